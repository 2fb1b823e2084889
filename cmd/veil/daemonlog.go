package main

import (
	"errors"
	"log/slog"

	"veil/conf"
)

// loggedError is a daemon's fatal error that its log has already told;
// run prints nothing more for it, so a JSON log stays JSON lines and the
// error is told once.
type loggedError struct{ err error }

func (e *loggedError) Error() string { return e.err.Error() }
func (e *loggedError) Unwrap() error { return e.err }

// logExit writes the error a daemon returns with to its log when the log
// is JSON, for the collector that reads it, and marks it logged. A text
// log's reader gets the usual "veil: error:" line on stderr instead.
func logExit(log *slog.Logger, format string, err *error) {
	if *err == nil || format != conf.LogJSON {
		return
	}
	log.Error("stopped", "err", *err)
	*err = &loggedError{*err}
}

// logReloadRefused logs a config that a reload could not load: a line
// saying so, then one line per problem, each at its file:line, rather than
// every problem inside one line.
func logReloadRefused(log *slog.Logger, err error) {
	const msg = "reload: the config was not applied; running on the old one"
	var list conf.Errors
	if !errors.As(err, &list) {
		log.Error(msg, "err", err)
		return
	}
	log.Error(msg, "problems", len(list))
	for _, e := range list {
		log.Error("reload: config problem", "err", e)
	}
}
