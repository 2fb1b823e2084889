package transfer

import (
	"bytes"
	"context"
	"testing"
	"time"

	"veil/onion/keys"
	"veil/shard"
	"veil/shard/store"
)

// drop makes relays answer every PUT with OK and keep nothing: each
// stream reaches a store of its own that is thrown away afterwards, so a
// GET finds nothing and f.stores shows the relay empty.
func (f *fakeNet) drop(relays ...keys.NodeID) {
	if f.dropping == nil {
		f.dropping = map[keys.NodeID]bool{}
	}
	for _, r := range relays {
		f.dropping[r] = true
	}
}

// sink is a store that forgets: the one a dropping relay's stream reaches.
func (f *fakeNet) sink() *store.Store {
	st, err := store.Open(f.t.TempDir(), store.Options{Quota: 1 << 30, Now: f.now})
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// TestAttackDroppingRelaysCannotLoseAShare: 6 of 30 storage relays (20 %)
// say OK to every PUT and keep nothing, and the client has never met
// them. With placement blind to that, about one segment in 17 of a (3, 2)
// share has three of its five shards on droppers and is lost. The upload
// must find the droppers out while it still holds the shards they took,
// store those shards again on other relays, and remember the droppers:
// afterwards every shard of every segment is on an honest relay, still no
// relay holds two shards of a segment, and the client's record names
// every dropper that took a shard and no honest relay.
func TestAttackDroppingRelaysCannotLoseAShare(t *testing.T) {
	f := newFakeNet(t, 30, time.Now)
	// Node IDs are 0x00ee.., 0x01ee..: placement hashes them, so the
	// first six are as good as any six.
	droppers := f.ids[:6]
	f.drop(droppers...)
	data := randomFile(64*tiny.SegmentSize + 5)
	size := int64(len(data))
	rel := NewReliability("", time.Now)
	n := f.expect(&Net{Workers: 4, Reliability: rel}, tiny, size)
	link, err := n.share(context.Background(), f.ids, nil, f.dial, bytes.NewReader(data), size, shard.Meta{}, tiny, shard.DefaultTTL, nil)
	if err != nil {
		t.Fatalf("share: %v", err)
	}
	checkNoRelayHoldsTwo(t, f, link, size)
	held := f.holders(link, size)
	lostShards, lostSegments := 0, 0
	for _, seg := range link.AllShardIDs(size) {
		missing := 0
		for _, id := range seg.IDs {
			if len(held[id]) == 0 {
				missing++
			}
		}
		lostShards += missing
		if len(seg.IDs)-missing < tiny.K && seg.Kind != shard.KindHead || seg.Kind == shard.KindHead && missing == len(seg.IDs) {
			lostSegments++
		}
	}
	if lostShards > 0 {
		t.Fatalf("after the share, %d shards are on droppers only and %d segments are lost", lostShards, lostSegments)
	}
	took := map[keys.NodeID]bool{}
	f.mu.Lock()
	for _, p := range f.puts {
		took[p.relay] = true
	}
	f.mu.Unlock()
	for _, r := range f.ids {
		bad := rel.Weight(r) < 1
		switch {
		case f.dropping[r] && took[r] && !bad:
			t.Errorf("dropper %x took shards and is not marked", r[:1])
		case !f.dropping[r] && bad:
			t.Errorf("honest relay %x is marked (weight %.3f)", r[:1], rel.Weight(r))
		}
	}
}

// TestSpotCheckRescueIsBestEffort: 2 of 6 relays drop everything and a
// (3, 2) segment needs 5, so some shard a dropper took has no relay left
// to go to once the other dropper is found out too. The share still
// succeeds (the dropper said OK to the shard, as before spot checks), and
// still never puts two shards of a segment on one relay.
func TestSpotCheckRescueIsBestEffort(t *testing.T) {
	f := newFakeNet(t, 6, time.Now)
	f.drop(f.ids[0], f.ids[1])
	data := randomFile(20*tiny.SegmentSize + 1)
	size := int64(len(data))
	rel := NewReliability("", time.Now)
	n := f.expect(&Net{Workers: 4, Reliability: rel}, tiny, size)
	link, err := n.share(context.Background(), f.ids, nil, f.dial, bytes.NewReader(data), size, shard.Meta{}, tiny, shard.DefaultTTL, nil)
	if err != nil {
		t.Fatalf("share: %v", err)
	}
	checkNoRelayHoldsTwo(t, f, link, size)
	if rel.Weight(f.ids[0]) >= 1 || rel.Weight(f.ids[1]) >= 1 {
		t.Fatal("a dropper was not found out")
	}
}
