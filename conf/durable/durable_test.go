package durable

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// names lists the entries of dir.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "doc.bin")
	for _, c := range []struct {
		data []byte
		perm os.FileMode
	}{
		{[]byte("first"), 0o600},
		{[]byte("second, longer than the first"), 0o640},
		{nil, 0o600},
	} {
		if err := WriteFile(path, c.data, c.perm); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, c.data) {
			t.Fatalf("file holds %q, want %q", got, c.data)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != c.perm {
			t.Fatalf("mode %v, want %v", fi.Mode().Perm(), c.perm)
		}
		if n := names(t, dir); len(n) != 1 || n[0] != "doc.bin" {
			t.Fatalf("directory holds %q, want only doc.bin", n)
		}
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "missing", "doc.bin")
	if err := WriteFile(path, []byte("x"), 0o600); err == nil {
		t.Fatal("wrote into a directory that does not exist")
	}
	if n := names(t, dir); len(n) != 0 {
		t.Fatalf("directory holds %q after a failed write", n)
	}
}

func TestWriteFileRenameFailure(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be makes the rename fail after
	// the temporary file is written.
	path := filepath.Join(dir, "doc.bin")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("new"), 0o600); err == nil {
		t.Fatal("replaced a directory with a file")
	}
	if n := names(t, dir); len(n) != 1 || n[0] != "doc.bin" {
		t.Fatalf("directory holds %q after a failed write, want only doc.bin", n)
	}
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Fatalf("doc.bin is no longer the directory: %v", err)
	}
}
