package shard

import (
	"slices"
	"strings"
	"testing"

	"veil/onion/keys"
)

func testRelays(n int) []keys.NodeID {
	r := make([]keys.NodeID, n)
	for i := range r {
		r[i] = sha256Sum([]byte{byte(i), byte(i >> 8)})
	}
	return r
}

func TestPlace(t *testing.T) {
	s := mustEncode(t, testFile(20, 5*small.SegmentSize), small, 20)
	key := s.Link.PlacementKey()
	relays := testRelays(12)
	for _, seg := range s.Segments {
		ids := seg.IDs()
		pl, err := Place(key, ids, relays)
		if err != nil {
			t.Fatal(err)
		}
		prim := map[keys.NodeID]bool{}
		for i, cands := range pl {
			if len(cands) != len(relays)-len(ids)+1 {
				t.Fatalf("shard %d: %d candidates", i, len(cands))
			}
			if prim[cands[0]] {
				t.Fatalf("%s segment %d: two shards on one relay", seg.Kind, seg.Index)
			}
			prim[cands[0]] = true
		}
		for _, cands := range pl {
			for _, alt := range cands[1:] {
				if prim[alt] {
					t.Fatal("an alternate is another shard's primary")
				}
			}
		}
		// Deterministic and independent of the relays' order.
		rev := slices.Clone(relays)
		slices.Reverse(rev)
		pl2, _ := Place(key, ids, rev)
		for i := range pl {
			if !slices.Equal(pl[i], pl2[i]) {
				t.Fatal("placement depends on the relays' order")
			}
		}
		// Rendezvous: removing a relay that holds none of the segment's
		// shards moves none of them.
		var spare keys.NodeID
		for _, r := range relays {
			if !prim[r] {
				spare = r
				break
			}
		}
		fewer := slices.DeleteFunc(slices.Clone(relays), func(r keys.NodeID) bool { return r == spare })
		pl3, _ := Place(key, ids, fewer)
		for i := range pl {
			if pl[i][0] != pl3[i][0] {
				t.Fatal("removing an unused relay moved a shard")
			}
		}
	}
	// Another share's key places differently.
	other := mustEncode(t, testFile(20, 10), small, 21).Link.PlacementKey()
	a, _ := Place(key, s.Segments[0].IDs(), relays)
	b, _ := Place(other, s.Segments[0].IDs(), relays)
	if slices.EqualFunc(a, b, func(x, y []keys.NodeID) bool { return x[0] == y[0] }) {
		t.Fatal("placement does not depend on the key")
	}
}

func TestPlaceErrors(t *testing.T) {
	ids := make([][32]byte, 5)
	if _, err := Place([32]byte{}, ids, testRelays(4)); err == nil || !strings.Contains(err.Error(), "4 storage relays for 5 shards") {
		t.Fatalf("too few relays: %v", err)
	}
	r := testRelays(6)
	r[5] = r[0]
	if _, err := Place([32]byte{}, ids, r); err == nil {
		t.Fatal("duplicate relay accepted")
	}
	pl, err := Place([32]byte{}, ids, testRelays(5))
	if err != nil || len(pl[0]) != 1 {
		t.Fatalf("exactly n relays: %v", err)
	}
}

// TestPlaceWeighted: a relay's share of primaries follows its weight;
// equal weights, whatever they are, give Place's lists exactly (so shares
// placed before weights still fetch); one relay never takes two shards of
// a segment; and changing one relay's weight moves only that relay.
func TestPlaceWeighted(t *testing.T) {
	relays := testRelays(20)
	light, lighter, zero := relays[3], relays[11], relays[17]
	weights := map[keys.NodeID]float64{light: 0.25, lighter: 0.02, zero: 0}
	weight := func(r keys.NodeID) float64 {
		if w, ok := weights[r]; ok {
			return w
		}
		return 1
	}
	const segments = 4000
	firsts := map[keys.NodeID]int{}
	for s := range segments {
		ids := [][32]byte{sha256Sum([]byte{'a', byte(s), byte(s >> 8)}), sha256Sum([]byte{'b', byte(s), byte(s >> 8)}), sha256Sum([]byte{'c', byte(s), byte(s >> 8)})}
		key := sha256Sum([]byte{'k', byte(s), byte(s >> 8)})
		pl, err := PlaceWeighted(key, ids, relays, weight)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[keys.NodeID]bool{}
		for _, cands := range pl {
			if seen[cands[0]] {
				t.Fatal("two shards of a segment on one relay")
			}
			seen[cands[0]] = true
		}
		firsts[pl[0][0]]++
		if pl[0][len(pl[0])-1] != zero {
			t.Fatalf("segment %d: a relay of weight 0 is not last", s)
		}
		same := func(r keys.NodeID) float64 { return 0.6 }
		a, _ := Place(key, ids, relays)
		b, _ := PlaceWeighted(key, ids, relays, same)
		for i := range a {
			if !slices.Equal(a[i], b[i]) {
				t.Fatalf("segment %d: equal weights order shard %d differently from Place", s, i)
			}
		}
		// Only the reweighted relay moves: the others keep their order.
		c, _ := PlaceWeighted(key, ids[:1], relays, weight)
		d, _ := Place(key, ids[:1], relays)
		drop := func(l []keys.NodeID) []keys.NodeID {
			return slices.DeleteFunc(slices.Clone(l), func(r keys.NodeID) bool { _, ok := weights[r]; return ok })
		}
		if !slices.Equal(drop(c[0]), drop(d[0])) {
			t.Fatalf("segment %d: reweighting three relays reordered the others", s)
		}
	}
	total := 17 + 0.25 + 0.02
	for r, w := range map[keys.NodeID]float64{light: 0.25, lighter: 0.02, relays[0]: 1} {
		want := segments * w / total
		if got := float64(firsts[r]); got < want*0.6-3 || got > want*1.4+3 {
			t.Errorf("relay of weight %.2f was first %d times of %d, want about %.0f", w, firsts[r], segments, want)
		}
	}
	if firsts[zero] != 0 {
		t.Errorf("relay of weight 0 was first %d times", firsts[zero])
	}
}
