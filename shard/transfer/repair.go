package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"veil/onion/keys"
	"veil/relay/path"
	"veil/shard"
	"veil/shard/store"
)

// RepairReport is what a repair found and did.
type RepairReport struct {
	Segments int // segments checked, the head counted as one
	Missing  int // shards no relay had intact
	Restored int // of those, stored again on another relay
	Relays   int // relays the restored shards went to
	// Dropped is how many relays took a restored shard and did not return
	// it when asked straight after: the shard went on to another relay,
	// and the relay weighs less in this client's record (SPEC.md §8.3).
	Dropped int
	// Damaged is how many relays returned a shard that failed its hash.
	Damaged int
}

// Repair checks every segment of a share (the head, the manifest, the
// data), asking for all its shards each over its own circuit, rebuilds
// the ones no relay has intact from those that verify, and stores each on
// a relay holding no other shard of its segment (shard/SPEC.md §8.1).
// Restored shards are kept for ttl, rounded up to a public bucket. It goes
// on past a shard it cannot place and reports it; it stops at a segment
// with fewer than k shards, which no repair can bring back.
func (n *Net) Repair(ctx context.Context, link *shard.Link, ttl time.Duration, progress Progress) (RepairReport, error) {
	var rep RepairReport
	ttl, err := shard.BucketTTL(ttl)
	if err != nil {
		return rep, err
	}
	var unplaced error
	relays, byID, err := n.storageRelays()
	if err != nil {
		return rep, err
	}
	r := &restorer{n: n, ttl: ttl, key: link.PlacementKey(), relays: relays, weight: n.placementWeight(publicWeights(byID)),
		verified: map[keys.NodeID]bool{}, dropped: map[keys.NodeID]bool{}, took: map[keys.NodeID]bool{}}
	defer func() {
		if err := n.Reliability.Save(); err != nil {
			n.log().Warn("repair: the storage relays' record was not saved", "err", err)
		}
	}()
	damaged := map[keys.NodeID]bool{}
	err = n.walk(ctx, link, io.Discard, progress, 0, nil, func(want shard.Want, s *segmentFetch) error {
		rep.Segments++
		rb, err := s.dec.Rebuild(s.get(len(want.IDs), 0))
		if err != nil {
			return err
		}
		rep.Missing += len(rb.Missing)
		r.measure(s, rb, damaged)
		order, err := repairOrder(r.key, s.ids, r.relays, r.weight)
		if err != nil {
			return err
		}
		for _, i := range rb.Missing {
			if err := r.restore(ctx, s, i, rb.All[i], order[i]); err != nil {
				err = fmt.Errorf("%w: %v segment %d, shard %d: %w", ErrNoRelayLeft, want.Kind, want.Index, i, err)
				n.log().Debug("repair: a shard could not be stored again", "err", err)
				unplaced = err
				continue
			}
			rep.Restored++
		}
		return s.dec.Add(rb.All)
	})
	rep.Relays, rep.Dropped, rep.Damaged = len(r.took), len(r.dropped), len(damaged)
	if err != nil {
		return rep, err
	}
	if rep.Restored < rep.Missing {
		return rep, fmt.Errorf("transfer: %d of %d missing shards could not be stored again: %w", rep.Missing-rep.Restored, rep.Missing, unplaced)
	}
	return rep, nil
}

// repairOrder is, for each shard of a segment, the relays a rebuilt shard
// may go to, in the order tried: its primary, then every other listed
// relay in its rank, both weighted by this client's record (SPEC.md §8.1).
// Not PlaceWeighted's upload lists: those leave out every other shard's
// primary, which is right while no shard is placed yet, but a repair's
// segment sits where the share put it, among relays some of which have
// gone since. With as many relays left as shards, every relay is a
// primary and each list is its primary alone; when that holds another
// shard, the shard had nowhere to go although a relay free of the
// segment was up (TestRepairRestoresRedundancy).
func repairOrder(key [32]byte, ids [][32]byte, relays []keys.NodeID, weight func(keys.NodeID) float64) ([][]keys.NodeID, error) {
	return fetchCandidates(key, ids, relays, weight)
}

// errHoldsOne is a relay's answer to HAS that rules it out for a restored
// shard: it holds another shard of the segment.
var errHoldsOne = errors.New("it holds another shard of the segment")

// errDropped is a relay that took a restored shard and did not return it.
var errDropped = errors.New("it did not return the shard it took")

// restorer is one repair's placing of rebuilt shards, and what it learned
// of the relays on the way.
type restorer struct {
	n      *Net
	ttl    time.Duration
	key    [32]byte
	relays []keys.NodeID
	weight func(keys.NodeID) float64 // public times this client's record

	verified map[keys.NodeID]bool // returned a shard intact in this repair
	dropped  map[keys.NodeID]bool // took a restored shard, then had none
	took     map[keys.NodeID]bool // took a restored shard and kept it
}

// measure records in the client's record what the gather of one segment
// showed: a relay that returned a shard intact kept it, one that returned
// other bytes did not. (A shard missing everywhere blames no relay: a
// repair cannot know where the share put it.)
func (r *restorer) measure(s *segmentFetch, rb *shard.Rebuilt, damaged map[keys.NodeID]bool) {
	bad := map[int]bool{}
	for _, i := range rb.Missing {
		bad[i] = true
	}
	for i, data := range s.got {
		if data == nil {
			continue
		}
		if bad[i] {
			r.n.Reliability.Lost(s.from[i])
			damaged[s.from[i]] = true
			continue
		}
		r.n.Reliability.Kept(s.from[i])
		r.verified[s.from[i]] = true
	}
}

// restore stores shard i of the segment again on the first relay in order
// (this client's weighted placement, SPEC.md §8.3) that holds no other
// shard of it, and notes it there. A relay that returned a shard of the
// segment in this repair, or was offered one by it, is passed over; one
// that is left is asked on the PUT's own circuit, before the PUT, whether
// it holds any other shard of the segment it has not already said it
// lacks. The gather asks a shard's relays only until one has it, so a
// shard stored twice (once while its first relay was unreachable) can sit
// unseen on a relay further down its list, and giving that relay a second
// shard would break the rule a repair is there to keep (DESIGN.md G7).
// What the question tells the relay is in SPEC.md §7. A relay that has
// not returned a shard intact in this repair is asked for the restored
// one straight after, over a circuit of its own, as an upload's spot
// check does (§8.3): one that does not return it is recorded, and the
// shard goes on down the order.
func (r *restorer) restore(ctx context.Context, s *segmentFetch, i int, data []byte, order []keys.NodeID) error {
	err := errors.New("every listed relay holds, or was offered, a shard of the segment")
	for _, relay := range order {
		if s.holdsOne(relay) {
			continue
		}
		// Offered, whatever happens next: a PUT whose answer was lost
		// may still have been stored.
		s.offered[relay] = true
		others := s.unknownAt(relay, i)
		// As an upload does (SPEC.md §8), a PUT that got no answer is
		// tried over one more fresh path before the relay is given up:
		// the middle may be what failed, and with as many relays left
		// as shards a relay given up for a broken path is a shard with
		// nowhere to go.
		for attempt := 0; attempt < putAttempts; attempt++ {
			err = s.dial(ctx, relay, func(sc *store.Client) error {
				for _, j := range others {
					has, err := sc.Has(s.ids[j])
					if err != nil {
						return err
					}
					if has {
						return fmt.Errorf("%w (shard %d)", errHoldsOne, j)
					}
				}
				return sc.Put(s.ids[i], data, r.ttl)
			})
			if err == nil || ctx.Err() != nil || answered(err) || errors.Is(err, errHoldsOne) || errors.Is(err, path.ErrNoGuard) {
				break
			}
			r.n.log().Debug("repair: a rebuilt shard got no answer", "relay", relay.Short(), "attempt", attempt, "err", err)
		}
		if err == nil && !r.verified[relay] {
			err = r.check(ctx, s, relay, s.ids[i], data)
		}
		if err == nil {
			s.got[i], s.from[i] = data, relay
			r.took[relay] = true
			return nil
		}
		r.n.log().Debug("repair: relay passed over for a rebuilt shard", "relay", relay.Short(), "err", err)
	}
	return err
}

// check asks relay for the shard it just took, over fresh circuits.
func (r *restorer) check(ctx context.Context, s *segmentFetch, relay keys.NodeID, id [32]byte, data []byte) error {
	for attempt := 0; attempt < fetchAttempts; attempt++ {
		var got []byte
		err := s.dial(ctx, relay, func(sc *store.Client) error {
			var err error
			got, err = sc.Get(id)
			return err
		})
		if ctx.Err() != nil || errors.Is(err, path.ErrNoGuard) {
			return nil // not the relay's doing: take its word
		}
		if err == nil && bytes.Equal(got, data) {
			r.n.Reliability.Kept(relay)
			r.verified[relay] = true
			return nil
		}
		if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrCorrupt) {
			break
		}
	}
	r.n.Reliability.Lost(relay)
	r.dropped[relay] = true
	return errDropped
}
