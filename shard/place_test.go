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
