package keys

import (
	"fmt"
	"io"
	"io/fs"
	"os"

	"veil/conf/durable"
)

const (
	dirPerm  = 0o700
	filePerm = 0o600
	// unsafePerm are the mode bits that would let someone other than the
	// owner read or change keys.
	unsafePerm = 0o077
)

// writeFileAtomic replaces path with data at filePerm: after a crash the
// file holds the old key or the new one, never a mix.
func writeFileAtomic(path string, data []byte) error {
	return durable.WriteFile(path, data, filePerm)
}

// readKeyFile reads a key file after checking, on the open file itself so
// the check and the read see the same file, that it is a regular file only
// its owner can access. A missing file returns an error satisfying
// errors.Is(err, fs.ErrNotExist).
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, err
		}
		return nil, &Error{Path: path, Msg: "open: " + errText(err), Err: err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, &Error{Path: path, Msg: "stat: " + errText(err), Err: err}
	}
	if !fi.Mode().IsRegular() {
		return nil, &Error{Path: path, Msg: "not a regular file", Err: ErrDamaged,
			Hint: "move it away; a key file must be a regular file"}
	}
	if err := checkPerm(path, fi, filePerm); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileLen+1))
	if err != nil {
		return nil, &Error{Path: path, Msg: "read: " + errText(err), Err: err}
	}
	return b, nil
}

// checkPerm refuses a file or directory that group or others can access:
// SSH and Tor refuse such keys too, since others may already have copied them.
func checkPerm(path string, fi fs.FileInfo, want fs.FileMode) error {
	if perm := fi.Mode().Perm(); perm&unsafePerm != 0 {
		return &Error{
			Path: path,
			Msg:  fmt.Sprintf("mode %04o lets group or others access it", perm),
			Hint: fmt.Sprintf("run: chmod %o %s", want, path),
			Err:  ErrInsecurePermissions,
		}
	}
	return nil
}

// errText drops the path that *fs.PathError repeats, since *Error names it.
func errText(err error) string {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
