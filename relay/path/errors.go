package path

import (
	"errors"
	"fmt"
)

// Sentinel errors that callers branch on. Errors from Guard, Path and
// PathTo wrap one of them with what was asked and why it failed.
var (
	// ErrNoGuard means no guard can be used now: none of the kept guards
	// is usable and no new one can be chosen (the list is full of guards
	// that are down, or the view lists no Guard relay that fits).
	ErrNoGuard = errors.New("path: no usable guard")
	// ErrNoExit means no exit in the view may reach the destination.
	ErrNoExit = errors.New("path: no exit allows the destination")
	// ErrNoExitRelay is the ErrNoExit of a view that lists no running
	// relay with the Exit flag: no destination is reachable, so it is
	// the network's state rather than one request's answer.
	ErrNoExitRelay = fmt.Errorf("%w: the view lists no exit", ErrNoExit)
	// ErrNoPath means relays exist for each position but no three of them
	// satisfy the distinctness rules together (SPEC.md §2).
	ErrNoPath = errors.New("path: no path satisfies the rules")
)

// kindError is an error whose message says what went wrong in full and
// which wraps the sentinel it is a kind of, so that the sentinel's own
// text is not repeated inside the message.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// errorf returns an error of kind with a formatted message. The message
// has no package prefix: the exported method that returns it adds one.
func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
