package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"veil/conf"
	"veil/onion/keys"
)

// cliError is an error with an optional fix to suggest.
type cliError struct {
	msg, hint string
	err       error
}

func (e *cliError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *cliError) Unwrap() error { return e.err }

// usageError is a command line that does not make sense; it exits with 2.
type usageError struct{ cliError }

func usageErr(hint, format string, args ...any) error {
	return &usageError{cliError{msg: fmt.Sprintf(format, args...), hint: hint}}
}

// printError writes `veil: error: …` and, where a fix is known,
// `veil: hint: …`, as DESIGN.md's command line section promises.
func printError(w io.Writer, err error) {
	msg, hint := err.Error(), ""
	var ce *cliError
	var ue *usageError
	var confErr *conf.Error
	var keyErr *keys.Error
	switch {
	case errors.As(err, &ue):
		hint = ue.hint
	case errors.As(err, &ce):
		hint = ce.hint
	}
	if errors.As(err, &confErr) && confErr.Hint != "" {
		// conf.Error carries its hint inline; print it on its own line.
		bare := *confErr
		bare.Hint = ""
		msg, hint = bare.Error(), confErr.Hint
	}
	if errors.As(err, &keyErr) && keyErr.Hint != "" {
		hint = keyErr.Hint
	}
	fmt.Fprintf(w, "veil: error: %s\n", msg)
	if hint != "" {
		fmt.Fprintf(w, "veil: hint: %s\n", hint)
	}
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("veil "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args, turning flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return usageErr("", "%s: help requested", fs.Name())
		}
		return usageErr("run "+fs.Name()+" -h", "%s: %v", fs.Name(), err)
	}
	return nil
}
