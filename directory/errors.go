package directory

import (
	"errors"
	"fmt"
)

// Sentinel errors that callers branch on. Every error from this package
// wraps exactly one of them and adds what went wrong where.
var (
	// ErrMalformed means bytes or fields do not follow SPEC.md.
	ErrMalformed = errors.New("directory: malformed document")
	// ErrBadSignature means a signature (the document's, or an onion cert's
	// inside a descriptor) does not verify.
	ErrBadSignature = errors.New("directory: bad signature")
	// ErrExpired means a document's validity ended before now.
	ErrExpired = errors.New("directory: document expired")
	// ErrFromFuture means a document is not valid until more than
	// ClockSkew after now.
	ErrFromFuture = errors.New("directory: document from the future")
	// ErrTooLarge means an encoding exceeds its stated maximum size.
	ErrTooLarge = errors.New("directory: document too large")
	// ErrMismatch means a descriptor is not the one its pointer names, a
	// pointer is not bound to the memberlist node that carries it, or a
	// consensus diff is for another base or makes another document.
	ErrMismatch = errors.New("directory: pointer does not match")
	// ErrUnpinned means a consensus is signed by a key the client does not pin.
	ErrUnpinned = errors.New("directory: consensus signed by a seed that is not pinned")
	// ErrEquivocation means one seed signed two different consensus
	// documents with the same valid-after time; neither counts.
	ErrEquivocation = errors.New("directory: seed signed conflicting documents")
	// ErrNoMajority means fewer than a strict majority of the pinned seeds
	// gave a usable consensus.
	ErrNoMajority = errors.New("directory: no majority of pinned seeds")
)

// kindError carries a specific message and wraps one of the sentinels.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func errorf(kind error, format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: kind}
}

func malformedf(format string, args ...any) error {
	return errorf(ErrMalformed, format, args...)
}
