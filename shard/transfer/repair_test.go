package transfer

import (
	"context"
	"errors"
	"testing"
	"time"

	"veil/onion/keys"
	"veil/shard"
	"veil/shard/store"
)

// repairSegment is a segment as a repair's gather left it: shards 0..3
// returned by relays 0..3, shard 4 missing everywhere; relays 4.. are the
// rest, in the order shard 4 lists them.
func repairSegment(t *testing.T, f *fakeNet) *segmentFetch {
	t.Helper()
	link := &shard.Link{Params: tiny, FileKey: [32]byte(fixedKey)}
	s := newSegmentFetch(context.Background(), 4, tiny.N(), newFetchStats())
	s.ids = link.ShardIDs(shard.KindData, 0)
	s.dial = f.dial
	s.cands = make([][]keys.NodeID, len(s.ids))
	for j := range s.ids {
		s.cands[j] = append([]keys.NodeID{f.ids[j]}, f.ids[len(s.ids):]...)
	}
	for j := range 4 {
		s.got[j], s.from[j] = []byte{byte(j)}, f.ids[j]
		if err := f.stores[f.ids[j]].Put(s.ids[j], s.got[j], time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestRestoreSkipsARelayHoldingAnUnseenShard: relay 5 holds a second copy
// of shard 2, left by an earlier repair while relay 2 was unreachable; the
// gather found shard 2 on relay 2 and never asked relay 5. Restoring
// shard 4, first on relay 5's list, must not go there: it goes to relay
// 6, and relay 5 still holds one shard of the segment.
func TestRestoreSkipsARelayHoldingAnUnseenShard(t *testing.T) {
	f := newFakeNet(t, 8, time.Now)
	s := repairSegment(t, f)
	s.cands[4] = []keys.NodeID{f.ids[5], f.ids[6], f.ids[7]}
	if err := f.stores[f.ids[5]].Put(s.ids[2], []byte{2}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := testRestorer().restore(context.Background(), s, 4, []byte{4}, s.cands[4]); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if s.from[4] != f.ids[6] || !f.stores[f.ids[6]].Has(s.ids[4]) {
		t.Fatalf("shard 4 restored on %x, want relay 6", s.from[4][:1])
	}
	if f.stores[f.ids[5]].Has(s.ids[4]) {
		t.Fatal("relay 5 was given shard 4 beside its copy of shard 2")
	}
}

// TestRestoreKnowsWhatTheGatherLearned: a relay that returned a shard of
// the segment, or said it lacks every other one, is treated as such; and
// with no relay left, restore fails rather than double up.
func TestRestoreKnowsWhatTheGatherLearned(t *testing.T) {
	f := newFakeNet(t, 6, time.Now)
	s := repairSegment(t, f)
	// Shard 4's list: relays holding shards 1 and 3, then relay 5.
	s.cands[4] = []keys.NodeID{f.ids[1], f.ids[3], f.ids[5]}
	for j := range 4 {
		s.noteAbsent(j, f.ids[5])
	}
	if got := s.unknownAt(f.ids[5], 4); len(got) != 0 {
		t.Fatalf("relay 5 said it lacks shards 0..3, yet %v are unknown", got)
	}
	if err := testRestorer().restore(context.Background(), s, 4, []byte{4}, s.cands[4]); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if s.from[4] != f.ids[5] {
		t.Fatalf("shard 4 restored on %x, want relay 5", s.from[4][:1])
	}
	// Relay 0 goes, and shard 0 with it: its list is relay 0, then
	// relay 5, which holds shard 4 now. It has nowhere to go.
	delete(f.stores, f.ids[0])
	s.got[0] = nil
	err := testRestorer().restore(context.Background(), s, 0, []byte{0}, s.cands[0])
	if err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("restore with every relay holding a shard or gone: %v, want an error", err)
	}
	t.Log(err)
	for r, st := range f.stores {
		if _, n := st.Usage(); n > 1 {
			t.Fatalf("relay %x holds %d shards of the segment", r[:1], n)
		}
	}
}

// testRestorer is a repair's restorer with nothing learned yet.
func testRestorer() *restorer {
	return &restorer{n: &Net{}, ttl: shard.DefaultTTL, verified: map[keys.NodeID]bool{}, dropped: map[keys.NodeID]bool{}, took: map[keys.NodeID]bool{}}
}

// TestAttackRestorePassesOverADropper: relay 5, first on the rebuilt
// shard's list, says OK to every PUT and keeps nothing. A repair that
// trusted the OK would leave the shard as lost as before; it asks for the
// shard straight back, records relay 5 as having lost it, and stores it
// on relay 6.
func TestAttackRestorePassesOverADropper(t *testing.T) {
	f := newFakeNet(t, 8, time.Now)
	s := repairSegment(t, f)
	f.drop(f.ids[5])
	r := testRestorer()
	r.n.Reliability = NewReliability("", time.Now)
	if err := r.restore(context.Background(), s, 4, []byte{4}, []keys.NodeID{f.ids[5], f.ids[6], f.ids[7]}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if s.from[4] != f.ids[6] || !f.stores[f.ids[6]].Has(s.ids[4]) {
		t.Fatalf("shard 4 restored on %x, want relay 6", s.from[4][:1])
	}
	if w := r.n.Reliability.Weight(f.ids[5]); w >= 1 || !r.dropped[f.ids[5]] {
		t.Fatalf("the dropper keeps weight %.3f", w)
	}
	if w := r.n.Reliability.Weight(f.ids[6]); w != 1 || !r.took[f.ids[6]] {
		t.Fatalf("relay 6 has weight %.3f", w)
	}
}

// TestRepairOrderReachesEveryFreeRelay: as many relays are left as a
// segment has shards (the testnet's 5 of 7 after two storage relays
// died), and the share's shards sit where the 7 put them, not where
// placement over the 5 would: the primaries of missing shards 3 and 4
// hold shards 0 and 1. Two relays hold none of the segment, and both
// rebuilt shards must go to them. With PlaceWeighted's upload lists as
// the order, each list is its primary alone and both shards fail with
// "every listed relay holds, or was offered, a shard of the segment".
func TestRepairOrderReachesEveryFreeRelay(t *testing.T) {
	f := newFakeNet(t, tiny.N(), time.Now)
	link := &shard.Link{Params: tiny, FileKey: [32]byte(fixedKey)}
	s := newSegmentFetch(context.Background(), 4, tiny.N(), newFetchStats())
	s.ids = link.ShardIDs(shard.KindData, 0)
	s.dial = f.dial
	order, err := repairOrder(link.PlacementKey(), s.ids, f.ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	primary := func(j int) keys.NodeID { return order[j][0] }
	// Shards 0, 1 and 2 on the primaries of shards 3, 4 and 2.
	for j, relay := range []keys.NodeID{primary(3), primary(4), primary(2)} {
		s.got[j], s.from[j] = []byte{byte(j)}, relay
		if err := f.stores[relay].Put(s.ids[j], s.got[j], time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	r := testRestorer()
	for _, i := range []int{3, 4} {
		if err := r.restore(context.Background(), s, i, []byte{byte(i)}, order[i]); err != nil {
			t.Fatalf("restore shard %d: %v", i, err)
		}
	}
	for _, relay := range f.ids {
		if _, n := f.stores[relay].Usage(); n != 1 {
			t.Fatalf("relay %x holds %d shards of the segment, want 1", relay[:1], n)
		}
	}
}

// TestRestoreTriesAFreshPath: the circuit to relay 5, the only relay
// free of the segment, dies before its PUT is answered. The rebuilt
// shard is sent once more over a fresh path, as an upload's is, and
// lands there instead of failing for want of a relay.
func TestRestoreTriesAFreshPath(t *testing.T) {
	f := newFakeNet(t, 6, time.Now)
	s := repairSegment(t, f)
	broken := 1
	s.dial = func(ctx context.Context, relay keys.NodeID, fn func(*store.Client) error) error {
		if relay == f.ids[5] && broken > 0 {
			broken--
			return errors.New("client: circuit destroyed: DESTROYED")
		}
		return f.dial(ctx, relay, fn)
	}
	if err := testRestorer().restore(context.Background(), s, 4, []byte{4}, []keys.NodeID{f.ids[5]}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if s.from[4] != f.ids[5] || !f.stores[f.ids[5]].Has(s.ids[4]) {
		t.Fatalf("shard 4 restored on %x, want relay 5", s.from[4][:1])
	}
}
