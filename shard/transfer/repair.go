package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"veil/shard"
	"veil/shard/store"
)

// RepairReport is what a repair found and did.
type RepairReport struct {
	Segments int // segments checked, the head counted as one
	Missing  int // shards no relay had intact
	Restored int // of those, stored again on another relay
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
	err = n.walk(ctx, link, io.Discard, progress, 0, func(want shard.Want, s *segmentFetch) error {
		rep.Segments++
		rb, err := s.dec.Rebuild(s.get(len(want.IDs), 0))
		if err != nil {
			return err
		}
		rep.Missing += len(rb.Missing)
		for _, i := range rb.Missing {
			if err := n.restore(ctx, s, i, rb.All[i], ttl); err != nil {
				err = fmt.Errorf("%w: %v segment %d, shard %d: %w", ErrNoRelayLeft, want.Kind, want.Index, i, err)
				n.log().Debug("repair: a shard could not be stored again", "err", err)
				unplaced = err
				continue
			}
			rep.Restored++
		}
		return s.dec.Add(rb.All)
	})
	if err != nil {
		return rep, err
	}
	if rep.Restored < rep.Missing {
		return rep, fmt.Errorf("transfer: %d of %d missing shards could not be stored again: %w", rep.Missing-rep.Restored, rep.Missing, unplaced)
	}
	return rep, nil
}

// errHoldsOne is a relay's answer to HAS that rules it out for a restored
// shard: it holds another shard of the segment.
var errHoldsOne = errors.New("it holds another shard of the segment")

// restore stores shard i of the segment again on the first of its relays
// that holds no other shard of it, and notes it there. A relay that
// returned a shard of the segment in this repair, or was offered one by
// it, is passed over; one that is left is asked on the PUT's own circuit,
// before the PUT, whether it holds any other shard of the segment it has
// not already said it lacks. The gather asks a shard's relays only until
// one has it, so a shard stored twice (once while its first relay was
// unreachable) can sit unseen on a relay further down its list, and
// giving that relay a second shard would break the rule a repair is
// there to keep (DESIGN.md G7). What the question tells the relay is in
// SPEC.md §7.
func (n *Net) restore(ctx context.Context, s *segmentFetch, i int, data []byte, ttl time.Duration) error {
	err := errors.New("every listed relay holds, or was offered, a shard of the segment")
	for _, relay := range s.cands[i] {
		if s.holdsOne(relay) {
			continue
		}
		// Offered, whatever happens next: a PUT whose answer was lost
		// may still have been stored.
		s.offered[relay] = true
		others := s.unknownAt(relay, i)
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
			return sc.Put(s.ids[i], data, ttl)
		})
		if err == nil {
			s.got[i], s.from[i] = data, relay
			return nil
		}
		n.log().Debug("repair: relay passed over for a rebuilt shard", "relay", relay.Short(), "err", err)
	}
	return err
}
