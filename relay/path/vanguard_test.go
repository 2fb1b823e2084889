package path

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"veil/directory"
	"veil/onion/keys"
)

// vanguardNet is two guards, twelve middles and a storage relay.
func vanguardNet(t *testing.T, at time.Time) (*directory.View, directory.Entry) {
	rs := []relay{
		{label: "g1", addr: "10.1.0.1", flags: guardFlags, at: at},
		{label: "g2", addr: "10.2.0.1", flags: guardFlags, at: at},
		{label: "s", addr: "10.3.0.1", flags: middleFlags | directory.FlagStorage, at: at},
	}
	for i := range 12 {
		rs = append(rs, relay{label: fmt.Sprint("m", i), addr: fmt.Sprintf("10.%d.0.1", 10+i), flags: middleFlags, at: at})
	}
	v := view(entries(t, rs...)...)
	for _, e := range v.Relays {
		if labelOf(e) == "s" {
			return v, e
		}
	}
	panic("no storage relay")
}

func vanguardIDs(s *Selector) map[keys.NodeID]vanguardRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[keys.NodeID]vanguardRecord{}
	for _, g := range s.vanguards {
		out[g.ID] = g
	}
	return out
}

// TestPathToUsesVanguards: the middles of PathTo circuits are the
// client's NumVanguards vanguards, kept across restarts, each for 1 to
// 12 days; one that expires or leaves the view is replaced.
func TestPathToUsesVanguards(t *testing.T) {
	c := &clock{t: t0}
	v, storage := vanguardNet(t, t0)
	dir := t.TempDir()
	s := newSelector(t, Options{DataDir: dir, Now: c.now})
	seen := map[keys.NodeID]int{}
	for range 400 {
		p, err := s.PathTo(v, storage)
		if err != nil {
			t.Fatal(err)
		}
		seen[p[1].Descriptor.NodeID()]++
	}
	vg := vanguardIDs(s)
	if len(vg) != NumVanguards || len(seen) != NumVanguards {
		t.Fatalf("%d vanguards, %d middles used, want %d", len(vg), len(seen), NumVanguards)
	}
	for id, n := range seen {
		r, ok := vg[id]
		if !ok {
			t.Fatalf("middle %s is not a vanguard", id.Short())
		}
		if n < 60 {
			t.Errorf("vanguard %s used %d times of 400, want about 100", id.Short(), n)
		}
		if life := r.Expires.Sub(r.Chosen); life < VanguardMinLifetime || life > VanguardMaxLifetime {
			t.Errorf("vanguard lifetime %v", life)
		}
		if s.guards[0].ID == id {
			t.Error("the guard is a vanguard")
		}
	}
	// A new process keeps them.
	s2 := newSelector(t, Options{DataDir: dir, Now: c.now})
	p, err := s2.PathTo(v, storage)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := vg[p[1].Descriptor.NodeID()]; !ok {
		t.Fatal("a new process drew a middle that is not a kept vanguard")
	}
	if got := vanguardIDs(s2); len(got) != NumVanguards {
		t.Fatalf("new process: %d vanguards", len(got))
	}
	for id := range vg {
		if _, ok := vanguardIDs(s2)[id]; !ok {
			t.Fatal("a new process changed the vanguards")
		}
	}

	// One that leaves the view is replaced at once.
	var gone directory.Entry
	for id := range vg {
		gone, _ = v.ByID(id)
		break
	}
	if _, err := s2.PathTo(without(v, gone), storage); err != nil {
		t.Fatal(err)
	}
	now := vanguardIDs(s2)
	if _, ok := now[gone.Descriptor.NodeID()]; ok || len(now) != NumVanguards {
		t.Fatalf("vanguard that left the view kept, or not replaced: %d vanguards", len(now))
	}

	// After VanguardMaxLifetime every one has been replaced.
	c.t = t0.Add(VanguardMaxLifetime)
	v2, storage2 := vanguardNet(t, c.t)
	if _, err := s2.PathTo(v2, storage2); err != nil {
		t.Fatal(err)
	}
	for id, r := range vanguardIDs(s2) {
		if !r.Chosen.Equal(c.t) {
			t.Errorf("vanguard %s chosen %v, not replaced at %v", id.Short(), r.Chosen, c.t)
		}
	}
}

// TestVanguardLifetimes: lifetimes are max(X, X) of uniform draws over
// 1 to 12 days: the mean is about 8.3 days, and all lie in the range.
func TestVanguardLifetimes(t *testing.T) {
	s := newSelector(t, Options{})
	var sum time.Duration
	const n = 4000
	for range n {
		l, err := vanguardLifetime(s)
		if err != nil {
			t.Fatal(err)
		}
		if l < VanguardMinLifetime || l > VanguardMaxLifetime {
			t.Fatalf("lifetime %v", l)
		}
		sum += l
	}
	mean := (sum / n).Hours() / 24
	if mean < 8.0 || mean > 8.7 {
		t.Fatalf("mean lifetime %.2f days, want about 8.33", mean)
	}
}

// TestPathToNoVanguardFits: when no vanguard fits the guard and the last
// hop, a fresh middle serves the circuit.
func TestPathToNoVanguardFits(t *testing.T) {
	v := view(entries(t,
		relay{label: "g", addr: "10.1.0.1", flags: guardFlags},
		relay{label: "m", addr: "10.2.0.1", flags: middleFlags},
		relay{label: "s", addr: "10.3.0.1", flags: middleFlags | directory.FlagStorage},
	)...)
	var storage directory.Entry
	for _, e := range v.Relays {
		if labelOf(e) == "s" {
			storage = e
		}
	}
	s := newSelector(t, Options{})
	p, err := s.PathTo(v, storage)
	if err != nil {
		t.Fatal(err)
	}
	if labelOf(p[1]) != "m" {
		t.Fatalf("middle %s", labelOf(p[1]))
	}
}

func TestVanguardFileErrors(t *testing.T) {
	id := nodeID(t, "m1")
	for _, tc := range []struct{ name, body string }{
		{"expires before chosen", fmt.Sprintf("veil vanguards v1\n%s 100 99\n", id)},
		{"lives too long", fmt.Sprintf("veil vanguards v1\n%s 100 %d\n", id, 100+int64(VanguardMaxLifetime/time.Second)+1)},
		{"too many", "veil vanguards v1\n" + func() string {
			var b strings.Builder
			for i := range NumVanguards + 1 {
				fmt.Fprintf(&b, "%s 1 2\n", nodeID(t, fmt.Sprint("v", i)))
			}
			return b.String()
		}()},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, VanguardFile), []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := NewSelector(Options{DataDir: dir})
		if err == nil || !strings.Contains(err.Error(), "delete it") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestDrawSetFollowsTime: the draws kept for a view are recomputed when a
// descriptor expires or becomes valid, so that no draw uses a relay that
// has(…) would refuse at that moment.
func TestDrawSetFollowsTime(t *testing.T) {
	c := &clock{t: t0}
	early := entry(t, relay{label: "early", addr: "10.1.0.1", flags: middleFlags, at: t0.Add(-directory.DefaultDescriptorLifetime + time.Minute)})
	late := entry(t, relay{label: "late", addr: "10.2.0.1", flags: middleFlags, at: t0.Add(time.Hour)})
	v := view(early, late)
	s := newSelector(t, Options{Now: c.now})
	labels := func() string {
		var out []string
		for _, e := range s.draws(v, c.t).running {
			out = append(out, labelOf(e))
		}
		return strings.Join(out, ",")
	}
	if got := labels(); got != "early" {
		t.Fatalf("at t0: %q", got)
	}
	c.t = t0.Add(2 * time.Minute) // early expired
	if got := labels(); got != "" {
		t.Fatalf("after early expired: %q", got)
	}
	c.t = t0.Add(time.Hour)
	if got := labels(); got != "late" {
		t.Fatalf("when late is valid: %q", got)
	}
	c.t = t0 // the clock went back
	if got := labels(); got != "early" {
		t.Fatalf("clock back at t0: %q", got)
	}
}

// TestMiddleDrawMatchesFilter: the middle drawn by rejection from every
// running relay (Selector.middle) follows the same distribution as pick
// over the relays that fit.
func TestMiddleDrawMatchesFilter(t *testing.T) {
	rs := []relay{{label: "g", addr: "10.1.0.1", flags: guardFlags}}
	for i := range 6 {
		rs = append(rs, relay{label: fmt.Sprint("m", i), addr: fmt.Sprintf("10.%d.0.1", 2+i), flags: middleFlags, bw: uint64(1+i) << 20})
	}
	rs = append(rs, relay{label: "near", addr: "10.1.9.9", flags: middleFlags, bw: 50 << 20}) // the guard's /16
	v := view(entries(t, rs...)...)
	s := newSelector(t, Options{})
	g, _ := s.Guard(v)
	ds := s.draws(v, t0)
	const n = 20000
	got := map[string]float64{}
	s.mu.Lock()
	for range n {
		e, ok, err := s.middle(ds, nil, g)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		got[labelOf(e)] += 1.0 / n
	}
	s.mu.Unlock()
	want := map[string]float64{}
	fit := s.fits(ds.running, g)
	var total float64
	for _, e := range fit {
		total += float64(ds.dw.at(e, posMiddle))
	}
	for _, e := range fit {
		want[labelOf(e)] = float64(ds.dw.at(e, posMiddle)) / total
	}
	if got["near"] != 0 || got["g"] != 0 {
		t.Fatalf("drew a relay that does not fit: %v", got)
	}
	checkShares(t, got, want, 0.015)
}
