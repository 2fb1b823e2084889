package durable

import (
	"errors"
	"testing"
)

// TestLockDir: a second holder is refused with ErrInUse, even within one
// process (flock locks open files, not processes); after Unlock it gets in.
func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	a, err := LockDir(dir, "lock")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockDir(dir, "lock"); !errors.Is(err, ErrInUse) {
		t.Fatalf("second lock: %v, want ErrInUse", err)
	}
	a.Unlock()
	a.Unlock()
	b, err := LockDir(dir, "lock")
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	b.Unlock()
}
