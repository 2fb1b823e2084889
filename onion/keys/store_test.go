package keys

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openTest(t *testing.T, dir string, clock *fakeClock, seed byte) *Store {
	t.Helper()
	s, err := Open(dir, Options{Now: clock.Now, Rand: testRand(seed)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestOpenCreatesKeysWithSafePermissions(t *testing.T) {
	dir := filepath.Join(dataDir(t), "veil")
	s := openTest(t, dir, newFakeClock(), 1)
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("data dir mode %04o, want 0700", m)
	}
	for _, name := range []string{IdentityFile, OnionFile} {
		if m := mode(t, filepath.Join(dir, name)); m != 0o600 {
			t.Errorf("%s mode %04o, want 0600", name, m)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("data dir holds %d entries, want the 2 key files (temporary files left?)", len(entries))
	}
	cur, prev := s.OnionKeys()
	if prev != nil || !cur.Created().Equal(t0) {
		t.Fatalf("first start: current created %v, previous %v", cur.Created(), prev)
	}
	if err := cur.Cert().Valid(t0); err != nil || cur.Cert().NodeID() != s.Identity().ID() {
		t.Fatalf("first onion cert: %v", err)
	}
	if want := t0.Add(DefaultRotateEvery + DefaultGrace); !cur.Cert().Expires.Equal(want) {
		t.Fatalf("cert expires %v, want %v", cur.Cert().Expires, want)
	}
}

func TestOpenLoadsSameKeys(t *testing.T) {
	dir := dataDir(t)
	clock := newFakeClock()
	a := openTest(t, dir, clock, 1)
	clock.Advance(time.Hour)
	b := openTest(t, dir, clock, 2) // a different rand would show as new keys
	if a.Identity().ID() != b.Identity().ID() {
		t.Fatal("second open has another identity")
	}
	ka, _ := a.OnionKeys()
	kb, _ := b.OnionKeys()
	if ka.Public() != kb.Public() || ka.Private() != kb.Private() || !ka.Created().Equal(kb.Created()) {
		t.Fatal("second open has another onion key")
	}
}

func TestOpenIsDeterministicWithFixedRand(t *testing.T) {
	a := openTest(t, dataDir(t), newFakeClock(), 5)
	b := openTest(t, dataDir(t), newFakeClock(), 5)
	ka, _ := a.OnionKeys()
	kb, _ := b.OnionKeys()
	if a.Identity().ID() != b.Identity().ID() || ka.Public() != kb.Public() {
		t.Fatal("same Rand gave different keys")
	}
}

// wantError checks that err is an *Error about path that unwraps to target,
// and whose message and hint mention the given words.
func wantError(t *testing.T, err error, path string, target error, msgWord, hintWord string) {
	t.Helper()
	var ke *Error
	if !errors.As(err, &ke) {
		t.Fatalf("err = %v (%T), want *keys.Error", err, err)
	}
	if ke.Path != path || !errors.Is(err, target) ||
		!strings.Contains(ke.Msg, msgWord) || !strings.Contains(ke.Hint, hintWord) {
		t.Fatalf("err = %q hint %q, want path %s, %v, msg with %q, hint with %q",
			err, ke.Hint, path, target, msgWord, hintWord)
	}
	if !strings.HasPrefix(err.Error(), "keys: "+path+": ") {
		t.Fatalf("err = %q, want prefix keys: PATH: ", err)
	}
}

func TestOpenRefusesInsecureKeyFiles(t *testing.T) {
	for _, name := range []string{IdentityFile, OnionFile} {
		for _, perm := range []os.FileMode{0o644, 0o640, 0o602} {
			dir := dataDir(t)
			openTest(t, dir, newFakeClock(), 1)
			path := filepath.Join(dir, name)
			if err := os.Chmod(path, perm); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir, Options{Now: newFakeClock().Now})
			wantError(t, err, path, ErrInsecurePermissions, "mode", "chmod 600 "+path)
		}
	}
}

func TestOpenRefusesInsecureDir(t *testing.T) {
	for _, perm := range []os.FileMode{0o750, 0o705, 0o777} {
		dir := dataDir(t)
		openTest(t, dir, newFakeClock(), 1)
		if err := os.Chmod(dir, perm); err != nil {
			t.Fatal(err)
		}
		_, err := Open(dir, Options{Now: newFakeClock().Now})
		wantError(t, err, dir, ErrInsecurePermissions, "group or others", "chmod 700 "+dir)
	}
}

func TestOpenRefusesDamagedFiles(t *testing.T) {
	damage := map[string]struct {
		change func([]byte) []byte
		msg    string
	}{
		"empty":       {func(b []byte) []byte { return nil }, "truncated"},
		"truncated":   {func(b []byte) []byte { return b[:len(b)-1] }, "truncated"},
		"half":        {func(b []byte) []byte { return b[:len(b)/2] }, "truncated"},
		"flipped bit": {func(b []byte) []byte { b[20] ^= 1; return b }, "checksum"},
		"wrong magic": {func(b []byte) []byte { copy(b, "NOTVEIL!"); return b }, "magic"},
		"too long":    {func(b []byte) []byte { return append(b, 0) }, "checksum"},
		"huge":        {func(b []byte) []byte { return append(b, make([]byte, 1<<20)...) }, "checksum"},
	}
	for _, name := range []string{IdentityFile, OnionFile} {
		for how, d := range damage {
			t.Run(name+"/"+how, func(t *testing.T) {
				dir := dataDir(t)
				openTest(t, dir, newFakeClock(), 1)
				path := filepath.Join(dir, name)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, d.change(b), 0o600); err != nil {
					t.Fatal(err)
				}
				_, err = Open(dir, Options{Now: newFakeClock().Now})
				wantError(t, err, path, ErrDamaged, d.msg, "restore it from a backup")
			})
		}
	}
}

func TestOpenRefusesForeignOnionKey(t *testing.T) {
	a, b := dataDir(t), dataDir(t)
	openTest(t, a, newFakeClock(), 1)
	openTest(t, b, newFakeClock(), 2)
	foreign, err := os.ReadFile(filepath.Join(b, OnionFile))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(a, OnionFile)
	if err := os.WriteFile(path, foreign, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(a, Options{Now: newFakeClock().Now})
	wantError(t, err, path, ErrKeyMismatch, "certified by node", "different nodes")
}

func TestOpenRefusesOnionKeyWithoutIdentity(t *testing.T) {
	dir := dataDir(t)
	openTest(t, dir, newFakeClock(), 1)
	path := filepath.Join(dir, IdentityFile)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{Now: newFakeClock().Now})
	wantError(t, err, path, os.ErrNotExist, "missing", "restore")
}

func TestOpenCreatesMissingOnionKey(t *testing.T) {
	dir := dataDir(t)
	a := openTest(t, dir, newFakeClock(), 1)
	if err := os.Remove(filepath.Join(dir, OnionFile)); err != nil {
		t.Fatal(err)
	}
	b := openTest(t, dir, newFakeClock(), 2)
	ka, _ := a.OnionKeys()
	kb, _ := b.OnionKeys()
	if a.Identity().ID() != b.Identity().ID() || ka.Public() == kb.Public() {
		t.Fatal("want the same identity with a new onion key")
	}
}

func TestOpenRejectsNegativeOptions(t *testing.T) {
	if _, err := Open(dataDir(t), Options{Grace: -time.Second}); err == nil {
		t.Fatal("accepted negative grace")
	}
}
