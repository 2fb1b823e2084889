package keys

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestReadNodeIDWritesNothing: ReadNodeID finds the ID Open made, and in a
// directory where no node ever ran it fails and creates nothing.
func TestReadNodeIDWritesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadNodeID(dir)
	if err != nil || got != s.Identity().ID() {
		t.Fatalf("ReadNodeID = %v, %v; want %v", got, err, s.Identity().ID())
	}
	empty := filepath.Join(t.TempDir(), "never")
	if _, err := ReadNodeID(empty); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no identity: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(empty); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadNodeID created %s", empty)
	}
}
