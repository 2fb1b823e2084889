package path

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"veil/directory"
	"veil/onion/keys"
)

// countCircuits counts built completed and failed circuits through g.
func countCircuits(s *Selector, g keys.NodeID, built, failed int) {
	for range built {
		s.CountCircuit(g, true)
	}
	for range failed {
		s.CountCircuit(g, false)
	}
}

func TestPathBiasDisablesGuard(t *testing.T) {
	v := guardNet(t)
	dir := t.TempDir()
	s := newSelector(t, Options{DataDir: dir})
	g, err := s.Guard(v)
	if err != nil {
		t.Fatal(err)
	}
	id := g.Descriptor.NodeID()

	// Below BiasMinCircuits nothing is judged, however bad.
	countCircuits(s, id, 0, BiasMinCircuits-1)
	if b, _ := s.GuardBias(id); !b.Disabled.IsZero() || b.Warned {
		t.Fatalf("judged after %d circuits: %+v", BiasMinCircuits-1, b)
	}
	// Recovering above the warning level clears the warning; 40 % warns.
	s = newSelector(t, Options{DataDir: t.TempDir()})
	g, _ = s.Guard(v)
	id = g.Descriptor.NodeID()
	countCircuits(s, id, 12, 18)
	if b, _ := s.GuardBias(id); !b.Warned || !b.Disabled.IsZero() {
		t.Fatalf("40 %% of 30: %+v, want warned, in use", b)
	}
	countCircuits(s, id, 20, 0)
	if b, _ := s.GuardBias(id); b.Warned {
		t.Fatalf("64 %% of 50: %+v, want no warning", b)
	}

	// 29 % of 31 stops the guard: it is dropped from the list, the
	// next guard serves, and a new process never chooses it again.
	s = newSelector(t, Options{DataDir: dir})
	countCircuits(s, id, 9, 22)
	b, ok := s.GuardBias(id)
	if !ok || b.Disabled.IsZero() {
		t.Fatalf("9 of 31 completed: %+v, want disabled", b)
	}
	next, err := s.Guard(v)
	if err != nil {
		t.Fatal(err)
	}
	if same(next, g) {
		t.Fatal("the disabled guard still serves")
	}
	if recs := readGuards(t, dir); len(recs) != 1 || recs[0].ID == id {
		t.Fatalf("guard file %+v still lists the disabled guard", recs)
	}
	for i := range 20 {
		s2 := newSelector(t, Options{DataDir: dir, Rand: shake("again " + string(rune('a'+i)))})
		if b, _ := s2.GuardBias(id); b.Disabled.IsZero() {
			t.Fatalf("a new process forgot the disabled guard: %+v", b)
		}
		// Drop the kept guard so that a new one is drawn each time.
		s2.mu.Lock()
		s2.guards = nil
		s2.mu.Unlock()
		if g2, err := s2.Guard(v); err != nil || same(g2, g) {
			t.Fatalf("new process chose %v (%v)", labelOf(g2), err)
		}
	}

	// BiasDisabledFor later it may be chosen again.
	c := &clock{t: t0.Add(BiasDisabledFor)}
	s3 := newSelector(t, Options{DataDir: dir, Now: c.now})
	if s3.disabledLocked(id, c.t) {
		t.Fatal("still disabled after BiasDisabledFor")
	}
}

func TestPathBiasStreams(t *testing.T) {
	v := guardNet(t)
	s := newSelector(t, Options{})
	g, _ := s.Guard(v)
	id := g.Descriptor.NodeID()
	for range 12 {
		s.CountStream(id, true)
	}
	for range 7 {
		s.CountStream(id, false)
	}
	if b, _ := s.GuardBias(id); b.Warned || !b.Disabled.IsZero() {
		t.Fatalf("judged before BiasMinStreams: %+v", b)
	}
	s.CountStream(id, false) // 12 of 20: 60 %, warned
	if b, _ := s.GuardBias(id); !b.Warned || !b.Disabled.IsZero() {
		t.Fatalf("12 of 20: %+v, want warned, in use", b)
	}
	s.CountStream(id, false) // 12 of 21: below 60 %
	if b, _ := s.GuardBias(id); b.Disabled.IsZero() {
		t.Fatalf("12 of 21: %+v, want disabled", b)
	}
}

func TestPathBiasScales(t *testing.T) {
	v := guardNet(t)
	s := newSelector(t, Options{})
	g, _ := s.Guard(v)
	id := g.Descriptor.NodeID()
	countCircuits(s, id, BiasScaleCircuits-1, 0)
	s.CountCircuit(id, false)
	b, _ := s.GuardBias(id)
	if b.Circuits != BiasScaleCircuits/2 || b.Built != (BiasScaleCircuits-1)/2 {
		t.Fatalf("after %d circuits: %+v, want halved", BiasScaleCircuits, b)
	}
	for range BiasScaleStreams {
		s.CountStream(id, true)
	}
	if b, _ := s.GuardBias(id); b.Streams != BiasScaleStreams/2 || b.Succeeded != BiasScaleStreams/2 {
		t.Fatalf("after %d streams: %+v, want halved", BiasScaleStreams, b)
	}
	// After scaling, old successes weigh half as much: a guard that turns
	// hostile is caught sooner than its whole history would allow.
	fails := 0
	for b.Disabled.IsZero() {
		s.CountCircuit(id, false)
		fails++
		b, _ = s.GuardBias(id)
	}
	if fails > 350 {
		t.Fatalf("%d failures to stop a guard that had completed %d circuits", fails, BiasScaleCircuits)
	}
	t.Logf("stopped after %d failures", fails)
}

func TestPathBiasIgnoresOtherRelays(t *testing.T) {
	v := guardNet(t)
	s := newSelector(t, Options{})
	if _, err := s.Guard(v); err != nil {
		t.Fatal(err)
	}
	other := nodeID(t, "m")
	countCircuits(s, other, 0, 100)
	if _, ok := s.GuardBias(other); ok {
		t.Fatal("a relay that is not a kept guard has a path-bias record")
	}
}

func TestBiasFileErrors(t *testing.T) {
	id := nodeID(t, "g1")
	for _, tc := range []struct{ name, body string }{
		{"no header", ""},
		{"built above circuits", "veil pathbias v1\n" + id.String() + " 3 4 0 0 0\n"},
		{"succeeded above streams", "veil pathbias v1\n" + id.String() + " 0 0 3 4 0\n"},
		{"unscaled circuits", "veil pathbias v1\n" + id.String() + " 300 0 0 0 0\n"},
		{"unscaled streams", "veil pathbias v1\n" + id.String() + " 0 0 100 0 0\n"},
		{"negative", "veil pathbias v1\n" + id.String() + " -1 0 0 0 0\n"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, BiasFile), []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := NewSelector(Options{DataDir: dir})
		if err == nil || !strings.Contains(err.Error(), "delete it") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestStateFileRoundTrip: what marshal writes parses back to the same
// records, and every truncation of it is refused.
func TestStateFileRoundTrip(t *testing.T) {
	recs := []stateRecord{
		{ID: nodeID(t, "a"), N: []int64{0, 1, 22, 333, 1 << 62}},
		{ID: nodeID(t, "b"), N: []int64{9, 0, 0, 0, time.Now().Unix()}},
	}
	b := biasFile.marshal(recs)
	got, err := biasFile.parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(biasFile.marshal(got), b) {
		t.Fatalf("round trip changed %q", b)
	}
	for i := len(biasFile.header); i < len(b); i++ {
		if b[i-1] == '\n' {
			continue // a whole number of lines is a valid shorter file
		}
		if _, err := biasFile.parse(b[:i]); err == nil {
			t.Fatalf("truncated to %d bytes: no error", i)
		}
	}
	for _, bad := range []string{
		"veil pathbias v1\n" + recs[0].ID.String() + " 01 0 0 0 0\n",
		"veil pathbias v1\n" + recs[0].ID.String() + "  0 0 0 0 0\n",
		"veil pathbias v1\n" + recs[0].ID.String() + " 0 0 0 0\n",
		"veil pathbias v1\n" + recs[0].ID.String() + " 0 0 0 0 0\n" + recs[0].ID.String() + " 0 0 0 0 0\n",
		"veil pathbias v2\n",
	} {
		if _, err := biasFile.parse([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// FuzzParseStateFile: whatever parses re-marshals to the same bytes.
func FuzzParseStateFile(f *testing.F) {
	f.Add([]byte("veil vanguards v1\n"))
	f.Add([]byte("veil vanguards v1\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1 2\n"))
	f.Add([]byte("veil vanguards v1\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1 02\n")) // not canonical
	f.Add([]byte("veil vanguards v1\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1 2"))    // no newline
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := vanguardFile.parse(b)
		if err != nil {
			return
		}
		if got := vanguardFile.marshal(recs); !bytes.Equal(got, b) {
			t.Fatalf("parsed %q, re-marshalled %q", b, got)
		}
	})
}

// TestUnreachableViaCountsDraws: a relay a guard said it could not reach
// is passed over by circuits through that guard only, and each draw that
// lands on it counts a failed circuit against the guard, so that failing
// circuits to honest relays does not make the guard's rate look better.
func TestUnreachableViaCountsDraws(t *testing.T) {
	v := view(entries(t,
		relay{label: "g", addr: "10.1.0.1", flags: guardFlags},
		relay{label: "m1", addr: "10.2.0.1", flags: middleFlags},
		relay{label: "m2", addr: "10.3.0.1", flags: middleFlags},
		relay{label: "e", addr: "10.4.0.1", flags: exitFlags},
	)...)
	byLabel := map[string]directory.Entry{}
	for _, e := range v.Relays {
		byLabel[labelOf(e)] = e
	}
	s := newSelector(t, Options{})
	g, err := s.Guard(v)
	if err != nil || labelOf(g) != "g" {
		t.Fatalf("guard %v (%v)", labelOf(g), err)
	}
	gid := g.Descriptor.NodeID()
	s.UnreachableVia(gid, byLabel["m1"].Descriptor.NodeID())
	dest := Destination{Host: "example.com", Port: 443}
	for range 200 {
		p, err := s.Path(v, dest)
		if err != nil {
			t.Fatal(err)
		}
		if labelOf(p[1]) != "m2" {
			t.Fatalf("middle %s, which the guard reported", labelOf(p[1]))
		}
		s.CountCircuit(gid, true)
	}
	b, _ := s.GuardBias(gid)
	// m1 and m2 weigh the same as middles: about one draw in two landed
	// on m1 and counted as a failure.
	if failed := b.Circuits - b.Built; failed < 60 {
		t.Fatalf("%+v: %d draws of the reported relay counted, want about 100 (scaled)", b, failed)
	}
	// Another guard's circuits are not affected.
	other := newSelector(t, Options{})
	other.UnreachableVia(nodeID(t, "someone"), byLabel["m1"].Descriptor.NodeID())
	seen := false
	for range 50 {
		p, err := other.Path(v, dest)
		if err != nil {
			t.Fatal(err)
		}
		seen = seen || labelOf(p[1]) == "m1"
	}
	if !seen {
		t.Fatal("a relay reported through another guard is passed over")
	}
	// UnreachableFor later it is drawn again.
	c := &clock{t: t0}
	s2 := newSelector(t, Options{Now: c.now})
	s2.Guard(v)
	s2.UnreachableVia(gid, byLabel["m1"].Descriptor.NodeID())
	c.t = t0.Add(UnreachableFor)
	seen = false
	for range 50 {
		p, err := s2.Path(v, dest)
		if err != nil {
			t.Fatal(err)
		}
		seen = seen || labelOf(p[1]) == "m1"
	}
	if !seen {
		t.Fatal("the mark outlived UnreachableFor")
	}
}
