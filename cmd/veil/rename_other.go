//go:build !linux

package main

import (
	"fmt"
	"io/fs"
	"os"
)

// renameNoReplace renames from to to unless to exists. Without
// renameat2 the check and the rename are two steps.
func renameNoReplace(from, to string) error {
	if _, err := os.Lstat(to); err == nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: fs.ErrExist}
	}
	return os.Rename(from, to)
}

// renameReplace puts from at to, whatever is there; what was at to ends
// at from, for the caller to remove.
func renameReplace(from, to string) error {
	if _, err := os.Lstat(to); err != nil {
		return os.Rename(from, to)
	}
	aside := from + ".old"
	if err := os.Rename(to, aside); err != nil {
		return fmt.Errorf("moving %s aside: %w", to, err)
	}
	if err := os.Rename(from, to); err != nil {
		os.Rename(aside, to)
		return err
	}
	return os.Rename(aside, from)
}
