package seed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"veil/directory"
	"veil/onion/keys"
)

// watch observes h every step from *at until end, with the relay of d up
// or not, and leaves *at at end.
func watch(h *History, at *time.Time, end time.Time, step time.Duration, d *directory.Descriptor, up bool) {
	for *at = at.Add(step); !at.After(end); *at = at.Add(step) {
		seen := map[keys.NodeID]Sighting{}
		if up {
			seen[d.NodeID()] = Sighting{Desc: d, OKAt: *at}
		}
		h.Observe(*at, seen)
	}
	*at = end
}

func near(got, want, tolerance float64) bool { return math.Abs(got-want) <= tolerance*math.Abs(want) }

// TestHistoryFractionAndMTBF: over minutes, where decay is negligible, WFU
// is the share of the watched time the relay was up, and MTBF the mean of
// its runs, the current one included.
func TestHistoryFractionAndMTBF(t *testing.T) {
	_, d := testRelay(t, "r", "10.0.0.1:9001", 0)
	h := NewHistory(time.Hour)
	at := t0
	h.Observe(at, map[keys.NodeID]Sighting{d.NodeID(): {Desc: d, OKAt: at}})
	watch(h, &at, t0.Add(10*time.Minute), 10*time.Second, d, true)
	watch(h, &at, t0.Add(11*time.Minute), 10*time.Second, d, false)
	watch(h, &at, t0.Add(20*time.Minute), 10*time.Second, d, true)
	st, ok := h.Stats(d.NodeID())
	if !ok {
		t.Fatal("no history")
	}
	if !st.FirstSeen.Equal(t0) {
		t.Errorf("first seen %v, want %v", st.FirstSeen, t0)
	}
	if !near(st.Known.Minutes(), 20, 0.01) {
		t.Errorf("known %v, want about 20 min", st.Known)
	}
	if !near(st.Fraction, 19.0/20, 0.01) {
		t.Errorf("WFU %.4f, want about %.4f", st.Fraction, 19.0/20)
	}
	// Runs of 10 and 9 minutes (the span in which it went down is
	// credited to the run, as Tor ends a run when it notices).
	if want := (10.0 + 9.0) / 2; !near(st.MTBF.Minutes(), want, 0.02) {
		t.Errorf("MTBF %v, want about %.1f min", st.MTBF, want)
	}
}

// TestHistoryDecay: Tor's weights. Uptime a week old counts half as much
// (0.95 every 12 hours: 0.95^14 ≈ 0.49), and a relay not seen Running for
// historyForget is forgotten.
func TestHistoryDecay(t *testing.T) {
	_, d := testRelay(t, "r", "10.0.0.1:9001", 0)
	h := NewHistory(2 * time.Hour)
	at := t0
	h.Observe(at, map[keys.NodeID]Sighting{d.NodeID(): {Desc: d}})
	watch(h, &at, t0.Add(time.Hour), time.Minute, d, true)
	// The minute in which it went down counts as up (the run ends when
	// the seed notices); then a week down.
	watch(h, &at, at.Add(time.Minute), time.Minute, d, false)
	watch(h, &at, at.Add(7*24*time.Hour), time.Hour, d, false)
	r := h.recs[d.NodeID()]
	// Each minute decayed from its own time: within 0.5% of a week.
	if want := 3660 * math.Pow(0.95, 14); !near(r.wUp, want, 0.01) {
		t.Errorf("weighted uptime %.1f s a week later, want %.1f s", r.wUp, want)
	}
	watch(h, &at, at.Add(historyForget), 24*time.Hour, d, false)
	if _, ok := h.Stats(d.NodeID()); ok {
		t.Error("a relay down for longer than historyForget is still remembered")
	}
}

// TestHistorySeedDowntimeNotCounted: the time a seed is stopped counts
// neither for a relay nor against it, and a relay seen again after the
// restart keeps its run (so Stable and Guard survive it).
func TestHistorySeedDowntimeNotCounted(t *testing.T) {
	_, d := testRelay(t, "r", "10.0.0.1:9001", 0)
	h := NewHistory(time.Hour)
	at := t0
	h.Observe(at, map[keys.NodeID]Sighting{d.NodeID(): {Desc: d, OKAt: at}})
	watch(h, &at, t0.Add(10*time.Minute), 10*time.Second, d, true)
	before, _ := h.Stats(d.NodeID())

	b, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h, err = ParseHistory(b, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	at = at.Add(time.Hour) // stopped for an hour
	h.Resume(at, time.Minute)
	h.Observe(at, map[keys.NodeID]Sighting{d.NodeID(): {Desc: d, OKAt: at}})
	after, _ := h.Stats(d.NodeID())
	if !near(after.Known.Seconds(), before.Known.Seconds(), 0.005) || after.Fraction != 1 || !near(after.MTBF.Seconds(), before.MTBF.Seconds(), 0.005) {
		t.Fatalf("after a seed restart: %+v, before it %+v", after, before)
	}
	watch(h, &at, at.Add(10*time.Minute), 10*time.Second, d, true)
	st, _ := h.Stats(d.NodeID())
	if !near(st.MTBF.Minutes(), 20, 0.01) || !near(st.Known.Minutes(), 20, 0.01) {
		t.Fatalf("the run did not go on across the restart: %+v", st)
	}
}

// TestHistoryWarmUp: after a restart, a relay that was up is not failed
// for being absent until the seed has had time to hear from it; after
// that, its run ends.
func TestHistoryWarmUp(t *testing.T) {
	_, d := testRelay(t, "r", "10.0.0.1:9001", 0)
	h := NewHistory(time.Hour)
	at := t0
	h.Observe(at, map[keys.NodeID]Sighting{d.NodeID(): {Desc: d}})
	watch(h, &at, t0.Add(10*time.Minute), 10*time.Second, d, true)
	at = at.Add(time.Hour)
	h.Resume(at, 30*time.Second)
	watch(h, &at, at.Add(20*time.Second), 10*time.Second, d, false)
	if r := h.recs[d.NodeID()]; !r.up || r.runWeights != 0 {
		t.Fatalf("absent during the warm-up: up %v, %v failures", r.up, r.runWeights)
	}
	watch(h, &at, at.Add(20*time.Second), 10*time.Second, d, false)
	if r := h.recs[d.NodeID()]; r.up || !near(r.runWeights, 1, 0.001) || !near(r.wRuns, 600, 0.01) {
		t.Fatalf("absent past the warm-up: up %v, %v failures, runs %.0f s", r.up, r.runWeights, r.wRuns)
	}
}

// TestHistoryStalledSeedCountsNothing: a span longer than maxSpan between
// two observations (the seed itself stalled) is counted for no relay.
func TestHistoryStalledSeedCountsNothing(t *testing.T) {
	_, d := testRelay(t, "r", "10.0.0.1:9001", 0)
	h := NewHistory(time.Minute)
	up := map[keys.NodeID]Sighting{d.NodeID(): {Desc: d}}
	h.Observe(t0, up)
	h.Observe(t0.Add(10*time.Minute), up)
	if st, _ := h.Stats(d.NodeID()); st.Known != 0 {
		t.Fatalf("a 10-minute stall counted %v", st.Known)
	}
}

// TestHistoryEvictsLeastUseful: over maxHistory, relays that are down go
// first, then those with the least weighted uptime; newcomers are never
// the ones evicted while an older record can go.
func TestHistoryEvictsLeastUseful(t *testing.T) {
	h := NewHistory(time.Minute)
	id := func(i int) keys.NodeID {
		var n keys.NodeID
		copy(n[:], fmt.Sprintf("%08d", i))
		return n
	}
	for i := range maxHistory {
		h.recs[id(i)] = &record{up: true, wUp: float64(1000 + i)}
	}
	h.recs[id(0)].up = false
	h.recs[id(maxHistory)] = &record{up: true}
	h.recs[id(maxHistory+1)] = &record{up: true}
	h.recs[id(maxHistory+2)] = &record{up: true}
	h.evict([]keys.NodeID{id(maxHistory), id(maxHistory + 1), id(maxHistory + 2)})
	if h.Len() != maxHistory {
		t.Fatalf("%d records, limit %d", h.Len(), maxHistory)
	}
	for _, gone := range []int{0, 1, 2} {
		if _, ok := h.recs[id(gone)]; ok {
			t.Errorf("record %d kept", gone)
		}
	}
	for _, kept := range []int{3, maxHistory, maxHistory + 2} {
		if _, ok := h.recs[id(kept)]; !ok {
			t.Errorf("record %d evicted", kept)
		}
	}
}

// historyOf returns a small history of two relays, one up, one down.
func historyOf(t testing.TB) *History {
	_, a := testRelay(t, "a", "10.0.0.1:9001", 0)
	_, b := testRelay(t, "b", "10.1.0.1:9001", 0)
	h := NewHistory(time.Hour)
	at := t0
	both := map[keys.NodeID]Sighting{a.NodeID(): {Desc: a, OKAt: at}, b.NodeID(): {Desc: b}}
	h.Observe(at, both)
	for range 5 {
		at = at.Add(7 * time.Second)
		h.Observe(at, both)
	}
	at = at.Add(7 * time.Second)
	h.Observe(at, map[keys.NodeID]Sighting{a.NodeID(): {Desc: a, OKAt: at}})
	return h
}

// TestHistoryFileRoundTrip: a saved history parses back to the same
// bytes, and every truncation of it is refused.
func TestHistoryFileRoundTrip(t *testing.T) {
	b, err := historyOf(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHistory(b, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		t.Fatalf("round trip changed the file:\n%s\n%s", b, again)
	}
	for n := range len(b) - 1 { // the last byte is a newline
		if _, err := ParseHistory(b[:n], time.Hour); err == nil {
			t.Fatalf("a file cut to %d of %d bytes parsed", n, len(b))
		}
	}
}

// TestHistoryFileRefused: every fault refuses the whole file.
func TestHistoryFileRefused(t *testing.T) {
	b, err := historyOf(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	_, other := testRelay(t, "other", "10.2.0.1:9001", 0)
	good := string(b)
	for _, tc := range []struct {
		name, old, new string
	}{
		{"version", `"version": 1`, `"version": 2`},
		{"unknown field", `"version": 1`, `"version": 1, "extra": 0`},
		{"infinite weight", `"weighted_known_s": `, `"weighted_known_s": 1e999, "x": `},
		{"trailing data", "}\n", "}\n{}"},
		{"no observed_at", `"observed_at"`, `"observed_atx"`},
	} {
		if !strings.Contains(good, tc.old) {
			t.Fatalf("%s: no %q in the file", tc.name, tc.old)
		}
		bad := strings.Replace(good, tc.old, tc.new, 1)
		if _, err := ParseHistory([]byte(bad), time.Hour); !errors.Is(err, ErrHistoryFile) {
			t.Errorf("%s: err %v, want ErrHistoryFile", tc.name, err)
		}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*historyDoc)
	}{
		{"negative weight", func(d *historyDoc) { d.Relays[0].RunWeights = -1 }},
		{"up beyond known", func(d *historyDoc) { d.Relays[0].WeightedUpS = d.Relays[0].WeightedKnownS + 1 }},
		{"run while down", func(d *historyDoc) { d.Relays[1].Up, d.Relays[1].RunS = false, 5 }},
		{"last up before first seen", func(d *historyDoc) { d.Relays[0].LastUp = d.Relays[0].FirstSeen.Add(-time.Second) }},
		{"bad node ID", func(d *historyDoc) { d.Relays[0].ID = "0" + d.Relays[0].ID[1:] }},
		{"node ID twice", func(d *historyDoc) { d.Relays[1] = d.Relays[0] }},
		{"another relay's descriptor", func(d *historyDoc) { d.Relays[0].Descriptor = other.Bytes() }},
		{"no descriptor", func(d *historyDoc) { d.Relays[0].Descriptor = nil }},
		{"check time without address", func(d *historyDoc) { d.Relays[0].CheckOKAddr = "" }},
		{"too many relays", func(d *historyDoc) { d.Relays = make([]historyJSON, maxHistory+1) }},
	} {
		var doc historyDoc
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		// Relay 0 or 1 is the one with a check; give both one.
		for i := range doc.Relays {
			if doc.Relays[i].CheckOKAt == nil {
				at := t0
				doc.Relays[i].CheckOKAt, doc.Relays[i].CheckOKAddr = &at, "10.0.0.1:9001"
			}
		}
		tc.mutate(&doc)
		bad, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseHistory(bad, time.Hour); !errors.Is(err, ErrHistoryFile) {
			t.Errorf("%s: err %v, want ErrHistoryFile", tc.name, err)
		}
	}
}

// FuzzParseHistory: whatever parses re-encodes to bytes that parse to the
// same encoding.
func FuzzParseHistory(f *testing.F) {
	b, err := historyOf(f).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)                                                                             // valid
	f.Add([]byte(`{"version": 1, "observed_at": "2031-05-06T07:08:09Z", "relays": []}`)) // valid, empty
	f.Add([]byte(`{"version": 1, "relays": null}`))                                      // no observed_at
	f.Add([]byte(`{"version": 2}`))                                                      // unknown version
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHistory(b, time.Hour)
		if err != nil {
			return
		}
		enc, err := h.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		h2, err := ParseHistory(enc, time.Hour)
		if err != nil {
			t.Fatalf("re-encoded history refused: %v\n%s", err, enc)
		}
		enc2, err := h2.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encodings differ:\n%s\n%s", enc, enc2)
		}
	})
}
