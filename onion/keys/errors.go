package keys

import "errors"

// Sentinels that an *Error unwraps to, so callers can tell a problem the
// operator must fix by hand (permissions, damage) from ordinary I/O errors.
var (
	ErrInsecurePermissions = errors.New("keys: key file or data directory is accessible by group or others")
	ErrDamaged             = errors.New("keys: key file is damaged")
	ErrKeyMismatch         = errors.New("keys: onion key is not certified by this identity")
)

// Error is returned by Open when a key file or the data directory cannot be
// used. Hint tells the operator what to do about it, in words the CLI can
// print as-is after "veil: hint: ".
type Error struct {
	Path string // the file or directory at fault
	Msg  string // what is wrong, lowercase, self-contained
	Hint string // how to fix it; may be empty
	Err  error  // the cause: a sentinel above or an I/O error; may be nil
}

func (e *Error) Error() string { return "keys: " + e.Path + ": " + e.Msg }

func (e *Error) Unwrap() error { return e.Err }
