package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

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
	// A config with several problems: each gets its own error line (and
	// hint), in file order, so one run of config check lists them all.
	var list conf.Errors
	if errors.As(err, &list) {
		for _, e := range list {
			printError(w, e)
		}
		return
	}
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
	// The flag package would print its error and the whole usage to
	// stderr, and parseFlags reports it again: silence it, so a bad flag
	// is reported once, and -h goes to stdout (helpError).
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// helpError is -h or --help: run prints text to stdout and exits 0, as
// every command-line tool does.
type helpError struct{ text string }

func (e *helpError) Error() string { return "help requested" }

// parseFlags parses args, turning -h into a helpError and other flag
// errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &helpError{text: flagsUsage(fs)}
		}
		return usageErr("run "+fs.Name()+" -h", "%s: %v", fs.Name(), err)
	}
	return nil
}

// flagsUsage is a command's help: its lines of the top-level usage, then
// its flags.
func flagsUsage(fs *flag.FlagSet) string {
	var b strings.Builder
	name := strings.TrimPrefix(fs.Name(), "veil ")
	fmt.Fprintf(&b, "usage: %s [flags]\n", fs.Name())
	if syn := synopsis(name); syn != "" {
		b.WriteString("\n" + syn)
	}
	b.WriteString("\nflags:\n")
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	return b.String()
}

// synopsis returns the lines of the top-level usage that describe the
// command name ("share", "config init"): its line and those indented below.
func synopsis(name string) string {
	first := strings.Fields(name)[0]
	var out []string
	in := false
	for _, line := range strings.Split(usage, "\n") {
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && len(f) > 0:
			in = f[0] == first && (len(strings.Fields(name)) == 1 || len(f) > 1 && f[1] == strings.Fields(name)[1])
		case !strings.HasPrefix(line, "   "):
			in = false
		}
		if in {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "\n") + "\n"
}
