package conf

import (
	"fmt"
	"strings"
)

// Error is what loading, parsing or validating a config returns. The CLI
// prints Error() after "veil: error: " and, when Hint is set, Hint after
// "veil: hint: ".
type Error struct {
	File string // config file name as given; "" for a config built in code
	Line int    // 1-based line of the offending key; 0 when unknown
	Key  string // dotted key, e.g. "or_addr" or "seed[1].dir_url" (0-based index); "" for syntax errors
	Msg  string // what is wrong, lowercase, no trailing period
	Hint string // how to fix it; may be empty
	Err  error  // underlying cause, e.g. the OS error; may be nil

	elem string // the offending list element, to find its own line
}

// Error formats the error on one line:
//
//	relay.toml:7: key "exit_policy": line 2 "acept *:80": unknown action "acept" (hint: use accept or reject)
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		fmt.Fprintf(&b, "%s: ", e.File)
	default:
		b.WriteString("conf: ")
	}
	if e.Key != "" {
		fmt.Fprintf(&b, "key %q: ", e.Key)
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		fmt.Fprintf(&b, " (hint: %s)", e.Hint)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// keyError is a validation error not yet placed in a file.
func keyError(key, hint, format string, args ...any) *Error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...), Hint: hint}
}

// Errors is every problem found in one config, in file order: `veil config
// check` reports them all at once, so an operator fixes a file in one pass
// rather than one error per run. Parsing returns a lone problem as a bare
// *Error; errors.As finds the first of a list.
type Errors []*Error

// Error puts each problem on a line of its own.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives errors.Is and errors.As every problem.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// problems collects the validation errors of a config, so that one bad
// value does not hide the next.
type problems []*Error

// add keeps e; a nil e (a check that passed) is ignored, so a check's
// result can be added without testing it first.
func (p *problems) add(e *Error) {
	if e != nil {
		*p = append(*p, e)
	}
}

// err returns nil, the lone *Error, or Errors.
func (p problems) err() error {
	switch len(p) {
	case 0:
		return nil
	case 1:
		return p[0]
	}
	return Errors(p)
}
