package conf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "node.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadCreatesDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := writeConfig(t, "data_dir = "+tomlQuote(dir)+"\n")
	if _, err := LoadRelay(path); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSeed(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v, %v", fi, err)
	}
	if _, err := LoadClient(path); err == nil {
		t.Fatal("LoadClient without seeds succeeded")
	}
	if _, err := LoadClient(writeConfig(t, "data_dir = "+tomlQuote(dir)+"\n"+clientSeeds)); err != nil {
		t.Fatal(err)
	}
}

func TestLoadUncreatableDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, "# under a regular file\n\ndata_dir = "+tomlQuote(filepath.Join(file, "veil"))+"\n")
	_, err := LoadRelay(path)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("LoadRelay = %v, want *Error", err)
	}
	if e.File != path || e.Line != 3 || e.Key != "data_dir" || !strings.Contains(e.Msg, "cannot create data directory") ||
		!errors.Is(err, syscall.ENOTDIR) || e.Hint == "" {
		t.Errorf("LoadRelay = %+v", e)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.toml")
	_, err := LoadSeed(path)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(e.Hint, "veil config init --role seed") {
		t.Errorf("LoadSeed(missing) = %v", err)
	}
}

func TestLoadReportsPath(t *testing.T) {
	path := writeConfig(t, "or_addr = 5\n")
	_, err := LoadRelay(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":1: ") {
		t.Errorf("LoadRelay = %v, want it to start with %s:1:", err, path)
	}
}
