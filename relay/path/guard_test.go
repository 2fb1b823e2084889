package path

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"veil/directory"
)

// guardNet is four guards and enough middles and exits for paths.
func guardNet(t *testing.T) *directory.View { return guardNetAt(t, t0) }

// guardNetAt is guardNet with descriptors published at at, so that it can
// be used then.
func guardNetAt(t *testing.T, at time.Time) *directory.View {
	return view(entries(t,
		relay{label: "g1", addr: "10.1.0.1", flags: guardFlags, at: at},
		relay{label: "g2", addr: "10.2.0.1", flags: guardFlags, at: at},
		relay{label: "g3", addr: "10.3.0.1", flags: guardFlags, at: at},
		relay{label: "g4", addr: "10.4.0.1", flags: guardFlags, at: at},
		relay{label: "m", addr: "10.5.0.1", flags: middleFlags, at: at},
		relay{label: "e", addr: "10.6.0.1", flags: exitFlags, at: at},
	)...)
}

func readGuards(t *testing.T, dir string) []guardRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, GuardFile))
	if err != nil {
		t.Fatal(err)
	}
	g, err := parseGuards(b)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGuardPersists(t *testing.T) {
	v := guardNet(t)
	dir := t.TempDir()
	s := newSelector(t, Options{DataDir: dir})
	first, err := s.Guard(v)
	if err != nil {
		t.Fatal(err)
	}
	if first.Flags&flagsGuard != flagsGuard {
		t.Fatalf("guard flags %v", first.Flags)
	}
	fi, err := os.Stat(filepath.Join(dir, GuardFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("guard file mode %v, want 0600", fi.Mode().Perm())
	}
	if g := readGuards(t, dir); len(g) != 1 || g[0].ID != first.Descriptor.NodeID() || !chosenAt(g[0].Chosen, t0, DefaultGuardLifetime) || !g[0].Down.IsZero() {
		t.Fatalf("guard file holds %+v", g)
	}
	// New selectors with other random sources, as after restarts, keep it.
	for i := range 10 {
		at := t0.Add(time.Duration(i) * 24 * time.Hour)
		v := guardNetAt(t, at)
		s := newSelector(t, Options{DataDir: dir, Rand: shake(fmt.Sprint("restart ", i)),
			Now: func() time.Time { return at }})
		for range 5 {
			g, err := s.Guard(v)
			if err != nil {
				t.Fatal(err)
			}
			if !same(g, first) {
				t.Fatalf("restart %d: guard %s, want %s", i, labelOf(g), labelOf(first))
			}
		}
	}
	// No temporary files are left behind.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Fatalf("data dir holds %d entries, want only %s", len(ents), GuardFile)
	}
}

func TestGuardLifetime(t *testing.T) {
	v := guardNet(t)
	dir := t.TempDir()
	c := &clock{t0}
	s := newSelector(t, Options{DataDir: dir, Now: c.now, GuardLifetime: 48 * time.Hour})
	if _, err := s.Guard(v); err != nil {
		t.Fatal(err)
	}
	// Kept for at least 90 % of its lifetime (the rest is random).
	c.t = t0.Add(48*time.Hour*9/10 - time.Second)
	if _, err := s.Guard(guardNetAt(t, c.t)); err != nil {
		t.Fatal(err)
	}
	if g := readGuards(t, dir); len(g) != 1 || !chosenAt(g[0].Chosen, t0, 48*time.Hour) {
		t.Fatalf("before its lifetime: %+v", g)
	}
	c.t = t0.Add(48 * time.Hour)
	// A restarted client replaces it too.
	s = newSelector(t, Options{DataDir: dir, Now: c.now, GuardLifetime: 48 * time.Hour})
	if _, err := s.Guard(guardNetAt(t, c.t)); err != nil {
		t.Fatal(err)
	}
	if g := readGuards(t, dir); len(g) != 1 || !chosenAt(g[0].Chosen, c.t, 48*time.Hour) {
		t.Fatalf("after its lifetime: %+v, want one chosen at %v", g, c.t)
	}
}

func TestGuardDefaultLifetime(t *testing.T) {
	v := guardNet(t)
	c := &clock{t0}
	s := newSelector(t, Options{Now: c.now})
	first, _ := s.Guard(v)
	c.t = t0.Add(DefaultGuardLifetime*9/10 - time.Second)
	if g, _ := s.Guard(guardNetAt(t, c.t)); !same(g, first) || len(s.guards) != 1 || !chosenAt(s.guards[0].Chosen, t0, DefaultGuardLifetime) {
		t.Fatalf("guard replaced before %v", DefaultGuardLifetime)
	}
	c.t = t0.Add(DefaultGuardLifetime)
	if _, err := s.Guard(guardNetAt(t, c.t)); err != nil {
		t.Fatal(err)
	}
	if len(s.guards) != 1 || !chosenAt(s.guards[0].Chosen, c.t, DefaultGuardLifetime) {
		t.Fatalf("guard not replaced after %v: %+v", DefaultGuardLifetime, s.guards)
	}
}

func TestGuardDown(t *testing.T) {
	v := guardNet(t)
	dir := t.TempDir()
	c := &clock{t0}
	opts := Options{DataDir: dir, Now: c.now, GuardDownLimit: 24 * time.Hour}
	s := newSelector(t, opts)
	first, err := s.Guard(v)
	if err != nil {
		t.Fatal(err)
	}

	// Absent from one consensus: a second guard serves meanwhile and
	// both are kept.
	c.t = t0.Add(time.Hour)
	second, err := s.Guard(without(v, first))
	if err != nil {
		t.Fatal(err)
	}
	if same(second, first) {
		t.Fatal("absent guard used")
	}
	g := readGuards(t, dir)
	if len(g) != 2 || g[0].ID != first.Descriptor.NodeID() || !g[0].Down.Equal(c.t) || g[1].ID != second.Descriptor.NodeID() {
		t.Fatalf("guard file after absence: %+v", g)
	}
	// Still absent: the same fallback, no new guard.
	c.t = t0.Add(2 * time.Hour)
	if g, _ := s.Guard(without(v, first)); !same(g, second) {
		t.Fatalf("fallback changed to %s", labelOf(g))
	}

	// Back, after a restart: the first guard serves again.
	c.t = t0.Add(3 * time.Hour)
	s = newSelector(t, opts)
	if g, _ := s.Guard(v); !same(g, first) {
		t.Fatalf("returning guard not used: got %s", labelOf(g))
	}
	if g := readGuards(t, dir); len(g) != 2 || !g[0].Down.IsZero() {
		t.Fatalf("guard file after return: %+v", g)
	}

	// Listed but not Running (or without Guard) for longer than the down
	// limit: dropped for good.
	for _, flags := range []directory.Flags{directory.FlagValid | directory.FlagGuard, middleFlags} {
		lost := withFlags(v, first, flags)
		c.t = t0.Add(4 * time.Hour)
		if g, _ := s.Guard(lost); !same(g, second) {
			t.Fatalf("flags %v: fallback %s, want %s", flags, labelOf(g), labelOf(second))
		}
		c.t = t0.Add(4*time.Hour + 24*time.Hour)
		v := guardNetAt(t, c.t)
		lost = withFlags(v, first, flags)
		if g, _ := s.Guard(lost); !same(g, second) {
			t.Fatalf("flags %v: guard %s, want %s", flags, labelOf(g), labelOf(second))
		}
		if g := readGuards(t, dir); len(g) != 1 || g[0].ID != second.Descriptor.NodeID() {
			t.Fatalf("flags %v: guard file after the down limit: %+v", flags, g)
		}
		// Once dropped it is not preferred when it returns.
		if g, _ := s.Guard(v); !same(g, second) {
			t.Fatalf("flags %v: dropped guard came back first", flags)
		}
		// Restore the first guard for the next round.
		s.mu.Lock()
		s.guards = []guardRecord{{ID: first.Descriptor.NodeID(), Chosen: t0}, {ID: second.Descriptor.NodeID(), Chosen: t0}}
		s.mu.Unlock()
	}
}

func TestGuardListFull(t *testing.T) {
	v := guardNet(t)
	s := newSelector(t, Options{})
	var kept []directory.Entry
	cur := v
	for range MaxGuards {
		g, err := s.Guard(cur)
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, g)
		cur = without(cur, g)
	}
	// All kept guards are down and one Guard relay remains: the client
	// refuses to reach for a fourth.
	if g, err := s.Guard(cur); !errors.Is(err, ErrNoGuard) {
		t.Fatalf("got %v, %v; want ErrNoGuard", g.Descriptor, err)
	} else {
		t.Log(err)
	}
	if _, err := s.Path(cur, web); !errors.Is(err, ErrNoGuard) {
		t.Fatalf("path: %v, want ErrNoGuard", err)
	}
	// When the last of them returns, it serves.
	if g, err := s.Guard(view(append(cur.Relays, kept[2])...)); err != nil || !same(g, kept[2]) {
		t.Fatalf("got %v, %v; want guard %s", g.Descriptor, err, labelOf(kept[2]))
	}
}

func TestGuardClockWentBack(t *testing.T) {
	v := guardNet(t)
	dir := t.TempDir()
	// A file written by a clock a year ahead.
	later := t0.Add(365 * 24 * time.Hour)
	ahead := newSelector(t, Options{DataDir: dir, Now: func() time.Time { return later }})
	first, err := ahead.Guard(guardNetAt(t, later))
	if err != nil {
		t.Fatal(err)
	}
	s := newSelector(t, Options{DataDir: dir})
	if g, _ := s.Guard(v); !same(g, first) {
		t.Fatal("guard changed")
	}
	if g := readGuards(t, dir); !g[0].Chosen.Equal(t0) {
		t.Fatalf("chosen at %v, want clamped to now %v", g[0].Chosen, t0)
	}
}

func TestGuardFileErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, GuardFile), []byte("veil guards v1\nnonsense\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewSelector(Options{DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("corrupt guard file: %v", err)
	}
	t.Log(err)

	// A data dir that cannot be written: Guard fails rather than use a
	// guard the next start would not remember, and retries.
	// Here the data dir is replaced by a file after the start.
	gone := filepath.Join(t.TempDir(), "data")
	s := newSelector(t, Options{DataDir: gone})
	if err := os.WriteFile(gone, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	v := guardNet(t)
	for range 2 {
		if _, err := s.Guard(v); err == nil || errors.Is(err, ErrNoGuard) {
			t.Fatalf("unwritable data dir: %v", err)
		} else {
			t.Log(err)
		}
	}
	// Once it can be written, the guard chosen meanwhile is kept.
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	g, err := s.Guard(v)
	if err != nil {
		t.Fatal(err)
	}
	if recs := readGuards(t, gone); len(recs) != 1 || recs[0].ID != g.Descriptor.NodeID() {
		t.Fatalf("guard file %+v, want %s", recs, labelOf(g))
	}

	for _, o := range []Options{{GuardLifetime: -1}, {GuardDownLimit: -1}} {
		if _, err := NewSelector(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestGuardFileRoundTrip(t *testing.T) {
	recs := []guardRecord{
		{ID: nodeID(t, "a"), Chosen: t0},
		{ID: nodeID(t, "b"), Chosen: t0.Add(-time.Hour), Down: t0.Add(time.Minute)},
		{ID: nodeID(t, "c"), Chosen: time.Unix(0, 0).UTC()},
	}
	for n := range len(recs) + 1 {
		b := marshalGuards(recs[:n])
		got, err := parseGuards(b)
		if err != nil {
			t.Fatalf("%d records: %v", n, err)
		}
		if len(got) != n {
			t.Fatalf("%d records: parsed %d", n, len(got))
		}
		for i := range got {
			if got[i].ID != recs[i].ID || !got[i].Chosen.Equal(recs[i].Chosen) || !got[i].Down.Equal(recs[i].Down) {
				t.Fatalf("record %d: %+v, want %+v", i, got[i], recs[i])
			}
		}
		// Every strict prefix but the ones ending at a line is refused.
		for l := range len(b) {
			if _, err := parseGuards(b[:l]); err == nil && b[l-1] != '\n' {
				t.Errorf("%d records: prefix of %d bytes parsed", n, l)
			}
		}
	}
	id := nodeID(t, "a").String()
	for _, bad := range []string{
		"",
		"veil guards v2\n",
		"veil guards v1\n" + id + " 1 0",                      // no final newline
		"veil guards v1\n" + id + " 1  0\n",                   // two spaces
		"veil guards v1\n" + id + " 01 0\n",                   // leading zero
		"veil guards v1\n" + id + " -1 0\n",                   // negative
		"veil guards v1\n" + id + " +1 0\n",                   // sign
		"veil guards v1\n" + id + " 1 0 \n",                   // trailing space
		"veil guards v1\n" + id + " 99999999999999999999 0\n", // too long
		"veil guards v1\n" + id + " 9999999999999999999 0\n",  // past int64
		"veil guards v1\n" + strings.ToUpper(id) + " 1 0\n",
		"veil guards v1\n" + id + " 1 0\n" + id + " 2 0\n", // twice
		"veil guards v1\r\n",
	} {
		if _, err := parseGuards([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	var four []guardRecord
	for _, l := range []string{"a", "b", "c", "d"} {
		four = append(four, guardRecord{ID: nodeID(t, l), Chosen: t0})
	}
	if _, err := parseGuards(marshalGuards(four)); err == nil {
		t.Error("more than MaxGuards parsed")
	}
}

// FuzzParseGuards checks that whatever parses re-encodes to the same
// bytes, so the file has one spelling per state, and that nothing panics.
func FuzzParseGuards(f *testing.F) {
	id := "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" // the zero node ID
	f.Add([]byte("veil guards v1\n"))                            // valid: no guards
	f.Add([]byte("veil guards v1\n" + id + " 1967795289 0\n"))   // valid: one usable guard
	f.Add([]byte("veil guards v1\n" + id + " 1967795289 1967798889\n" +
		"baaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 0 0\n")) // valid: first down, second usable
	f.Add([]byte("veil guards v1\n" + id + " 1967795289 0"))          // invalid: no final newline
	f.Add([]byte("veil guards v1\n" + id + " 01967795289 0\n"))       // invalid: leading zero
	f.Add([]byte("veil guards v1\n" + id + " 1 0\n" + id + " 1 0\n")) // invalid: listed twice
	f.Add([]byte("veil guards v1\nab 1 0\n"))                         // invalid: short node ID
	f.Add([]byte("veil guards v0\n"))                                 // invalid: unknown header
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := parseGuards(b)
		if err != nil {
			return
		}
		if got := marshalGuards(recs); string(got) != string(b) {
			t.Fatalf("re-encoding differs:\n%q\n%q", b, got)
		}
	})
}

// chosenAt says a guard record's time fits a guard chosen at when: put back
// by at most a tenth of the lifetime (guard.go).
func chosenAt(got, when time.Time, lifetime time.Duration) bool {
	return !got.After(when) && !got.Before(when.Add(-lifetime/10))
}

// TestGuardLifetimeIsRandom: clients that choose a guard at the same
// moment do not all change it at the same moment.
func TestGuardLifetimeIsRandom(t *testing.T) {
	v := guardNet(t)
	seen := map[time.Time]bool{}
	for i := range 20 {
		s := newSelector(t, Options{Rand: shake(fmt.Sprint("client ", i)), Now: func() time.Time { return t0 }})
		if _, err := s.Guard(v); err != nil {
			t.Fatal(err)
		}
		seen[s.guards[0].Chosen] = true
	}
	if len(seen) < 15 {
		t.Fatalf("20 clients' guards expire at %d distinct times", len(seen))
	}
}
