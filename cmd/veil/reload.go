package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"

	"veil/conf"
)

// onHangup calls reload at each SIGHUP until ctx ends, from a goroutine
// that wg tracks. Without it SIGHUP would kill the daemon (Go's default),
// with status 129 and no log; it is registered before the daemon starts,
// so a HUP during start-up is a reload too.
func onHangup(ctx context.Context, wg *sync.WaitGroup, reload func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	wg.Go(func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				reload()
			}
		}
	})
}

// newDaemonLogger is newLogger with a level a reload can change, writing
// the config's log_format: slog's text lines, or one JSON object a line.
func newDaemonLogger(stderr io.Writer, level slog.Level, format string) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.Set(level)
	opts := &slog.HandlerOptions{Level: lv}
	if format == conf.LogJSON {
		return slog.New(slog.NewJSONHandler(stderr, opts)), lv
	}
	return slog.New(slog.NewTextHandler(stderr, opts)), lv
}

// reported logs the outcome of a reload: what changed now, and what keeps
// its old value until a restart.
func reported(log *slog.Logger, applied, restart []string) {
	if len(applied) == 0 && len(restart) == 0 {
		log.Info("config reloaded: nothing changed")
		return
	}
	if len(applied) > 0 {
		log.Info("config reloaded", "applied", strings.Join(applied, ","))
	}
	if len(restart) > 0 {
		log.Warn("config reloaded, but these keys keep their old values until a restart", "keys", strings.Join(restart, ","))
	}
}

// logLevelOnly is the reload of a daemon for which only log_level is live
// (a seed, a proxy): it sets the level and names every other change.
func logLevelOnly[C any](levels *slog.LevelVar, cur C, next C, level func(C) slog.Level) (applied, restart []string) {
	for _, k := range conf.Changed(cur, next) {
		if k == "log_level" {
			applied = append(applied, k)
		} else {
			restart = append(restart, k)
		}
	}
	if slices.Contains(applied, "log_level") {
		levels.Set(level(next))
	}
	return applied, restart
}
