package transfer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"sync"
	"time"

	"veil/onion/keys"
	"veil/relay/path"
	"veil/shard"
	"veil/shard/store"
)

// Uploading a share (shard/SPEC.md §8, §8.2).

const (
	// shuffleWindow is how many data segments' shards an upload sends in
	// one random order. Sent segment by segment, the n shards of a
	// segment reach their n relays within milliseconds of each other, so
	// relays that compare arrival times match them up; shuffled, a relay
	// receives its shards of the window's segments in an order that says
	// nothing about which segment each is, and colluding relays can pair
	// theirs only up to one of shuffleWindow segments. It costs memory,
	// not throughput: the window's shards are held until sent, 14 MB at
	// (3, 2) and 13 MB at (10, 5), plus those in flight.
	shuffleWindow = 8
	// putAttempts is how many fresh paths an upload tries to one relay
	// while its PUTs get no answer: a middle that just died fails the
	// circuit before it reaches the relay, and a relay is offered one
	// shard of a segment at most, so giving it up for a broken path
	// would cost the segment a relay.
	putAttempts = 2
)

// ErrNoRelayLeft is wrapped when a shard cannot be stored: every relay
// listed for it refused it, could not be reached, or was already offered
// another shard of its segment. The share fails rather than put two
// shards of one segment on one relay (DESIGN.md G7).
var ErrNoRelayLeft = errors.New("transfer: no storage relay left that holds no other shard of the segment")

// dialFunc runs f on a storage client to relay, over a circuit of its
// own; Net.withStore in real use, an in-memory store in tests.
type dialFunc func(ctx context.Context, relay keys.NodeID, f func(*store.Client) error) error

// answered reports whether err is a storage relay's answer (a status it
// sent back) rather than a failure on the way to it: a fresh path would
// not change it.
func answered(err error) bool {
	for _, e := range []error{store.ErrQuota, store.ErrConflict, store.ErrTooLarge, store.ErrInvalid,
		store.ErrRateLimited, store.ErrCorrupt, store.ErrNotFound} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// segmentClaims records which shard of one segment each relay has been
// offered. A relay is offered at most one shard of a segment, whatever it
// answered: one that said QUOTA may have kept the shard all the same, and
// a PUT whose circuit died may have arrived. Without this record, shards
// whose primaries refused moved down lists that overlap, and two of them
// could land on one alternate (issue 15: 7 of 58 segments, once two
// relays' quotas were filled with junk). Workers store a segment's shards
// at once, so the record is shared.
type segmentClaims struct {
	kind  shard.Kind
	index uint64
	ids   [][32]byte // the segment's shard IDs, to place a shard again

	mu    sync.Mutex // guards owner
	owner map[keys.NodeID]int
}

// newSegmentClaims gives each shard its primary from the start: shard i
// never tries another shard's primary (SPEC.md §8).
func newSegmentClaims(seg *shard.Segment, cands [][]keys.NodeID) *segmentClaims {
	c := &segmentClaims{kind: seg.Kind, index: seg.Index, ids: seg.IDs(), owner: make(map[keys.NodeID]int, len(cands))}
	for i, list := range cands {
		c.owner[list[0]] = i
	}
	return c
}

// claim reports whether shard i may be offered to relay, and records the
// offer: true if relay is free or already shard i's.
func (c *segmentClaims) claim(relay keys.NodeID, i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o, ok := c.owner[relay]; ok {
		return o == i
	}
	c.owner[relay] = i
	return true
}

// spent is the owner of a relay that failed a spot check holding a shard
// of the segment: no shard of it may go there again, not even that one.
const spent = -1

// spend marks relay as no longer taking any shard of the segment.
func (c *segmentClaims) spend(relay keys.NodeID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.owner[relay] = spent
}

// upload is one shard to store: its place in its segment, the relays to
// try in order (primary first), and the segment's claims.
type upload struct {
	shard  shard.Shard
	i      int
	cands  []keys.NodeID
	claims *segmentClaims
	win    *window // the shuffle window it is sent in, which checks it
}

// Share encodes the file read from r and stores every shard, each over its
// own circuit, trying alternates when a relay refuses or is gone, but never
// a relay offered another shard of the same segment. The TTL is rounded up
// to a public bucket (shard.BucketTTL). It returns the link once every
// shard is stored. meta is what the encrypted manifest says the bytes are,
// and their name (shard/SPEC.md §5.1).
func (n *Net) Share(ctx context.Context, r io.Reader, size int64, meta shard.Meta, p shard.Params, ttl time.Duration, progress Progress) (*shard.Link, error) {
	relays, byID, err := n.storageRelays()
	if err != nil {
		return nil, err
	}
	dial := func(ctx context.Context, relay keys.NodeID, f func(*store.Client) error) error {
		return n.withStore(ctx, byID[relay], f)
	}
	return n.share(ctx, relays, publicWeights(byID), dial, r, size, meta, p, ttl, progress)
}

// share is Share over the relays given, weighted by public (nil: all
// alike) as fetchers weigh them, storing through dial.
func (n *Net) share(ctx context.Context, relays []keys.NodeID, public func(keys.NodeID) float64, dial dialFunc, r io.Reader, size int64, meta shard.Meta, p shard.Params, ttl time.Duration, progress Progress) (*shard.Link, error) {
	ttl, err := shard.BucketTTL(ttl)
	if err != nil {
		return nil, err
	}
	random := n.random
	if random == nil {
		random = rand.Reader
	}
	enc, err := shard.NewEncoder(r, size, p, random)
	if err != nil {
		return nil, err
	}
	if err := enc.SetMeta(meta); err != nil {
		return nil, err
	}
	key := enc.PlacementKey()
	jobs := make(chan upload, n.workers())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex // guards firstErr
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	chk := &checker{n: n, dial: dial, ttl: ttl, relays: relays, key: key, weight: n.placementWeight(public), verified: map[keys.NodeID]bool{}}
	// The workers are this call's: they end when jobs is closed, and
	// share waits for them before it returns.
	for range n.workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range jobs {
				// A random pause blurs the start of circuits the
				// window's order puts side by side.
				if sleepCtx(ctx, mathrand.N(uploadJitter)) {
					relay, err := n.upload(ctx, dial, u, ttl)
					if err != nil {
						fail(err)
					} else {
						u.win.stored(relay, u)
					}
				}
				u.win.pending.Done()
			}
		}()
	}
	// Each window is checked once its uploads are done, while the next
	// ones go out (checks.go); holding is how many windows' shards are
	// kept for that, which bounds the memory.
	var checks sync.WaitGroup
	holding := make(chan struct{}, windowsHeld)
	// The producer holds shuffleWindow data segments' shards and sends
	// them in random order. The last window also takes the manifest and
	// the head, so their shards are not the last to arrive as a group.
	var batch []upload
	flush := func() {
		win := &window{took: map[keys.NodeID][]upload{}}
		select {
		case holding <- struct{}{}:
		case <-ctx.Done():
			batch = batch[:0]
			return
		}
		mathrand.Shuffle(len(batch), func(a, b int) { batch[a], batch[b] = batch[b], batch[a] })
		for _, u := range batch {
			u.win = win
			win.pending.Add(1)
			select {
			case jobs <- u:
			case <-ctx.Done():
				win.pending.Done()
			}
		}
		batch = batch[:0]
		checks.Add(1)
		go func() {
			defer checks.Done()
			defer func() { <-holding }()
			win.pending.Wait()
			if err := chk.window(ctx, win); err != nil {
				fail(err)
			}
		}()
	}
	var done, segs int64
	var encErr error
	for {
		seg, err := enc.Next()
		if err == io.EOF {
			flush()
			break
		}
		if err != nil {
			encErr = err
			break
		}
		// Placed with the weights as they are now: a relay a check of
		// an earlier window caught takes almost none of the later ones.
		cands, err := shard.PlaceWeighted(key, seg.IDs(), relays, chk.weight)
		if err != nil {
			encErr = err
			break
		}
		claims := newSegmentClaims(seg, cands)
		for i, sh := range seg.Shards {
			batch = append(batch, upload{shard: sh, i: i, cands: cands[i], claims: claims})
		}
		if seg.Kind != shard.KindData {
			continue
		}
		if segs++; segs%shuffleWindow == 0 && segs < p.Segments(size) {
			flush()
		}
		done = min(size, done+int64(p.SegmentSize))
		if progress != nil {
			progress(done, size)
		}
	}
	// Checks end before jobs closes: none sends on it, but a check's
	// window must have had every upload done, which needs the workers.
	checks.Wait()
	close(jobs)
	wg.Wait()
	chk.report()
	if err := n.Reliability.Save(); err != nil {
		n.log().Warn("share: the storage relays' record was not saved", "err", err)
	}
	if encErr != nil {
		return nil, encErr
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return enc.Link()
}

// placementWeight is a relay's weight for this client's uploads: the
// public one times what this client measured of it (SPEC.md §8.3).
func (n *Net) placementWeight(public func(keys.NodeID) float64) func(keys.NodeID) float64 {
	return func(r keys.NodeID) float64 {
		w := n.Reliability.Weight(r)
		if public != nil {
			w *= public(r)
		}
		return w
	}
}

// upload stores one shard on the first of its relays that takes it among
// those offered no other shard of its segment, and returns that relay.
func (n *Net) upload(ctx context.Context, dial dialFunc, u upload, ttl time.Duration) (keys.NodeID, error) {
	var last error
	tried := 0
	for _, relay := range u.cands {
		if !u.claims.claim(relay, u.i) {
			continue
		}
		tried++
		for attempt := 0; attempt < putAttempts; attempt++ {
			err := dial(ctx, relay, func(sc *store.Client) error {
				return sc.Put(u.shard.ID, u.shard.Data, ttl)
			})
			if err == nil {
				return relay, nil
			}
			if ctx.Err() != nil {
				return keys.NodeID{}, ctx.Err()
			}
			last = err
			n.log().Debug("transfer: shard not stored", "relay", relay.Short(), "attempt", attempt, "err", err)
			if answered(err) || errors.Is(err, path.ErrNoGuard) {
				break // another path would get the same answer
			}
		}
	}
	if last == nil {
		last = errors.New("every listed relay was offered another shard of the segment")
	}
	return keys.NodeID{}, fmt.Errorf("%w: %v segment %d, shard %d: %d relays tried of %d listed: %w",
		ErrNoRelayLeft, u.claims.kind, u.claims.index, u.i, tried, len(u.cands), last)
}
