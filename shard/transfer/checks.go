package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"sync"
	"time"

	"veil/onion/keys"
	"veil/relay/path"
	"veil/shard"
	"veil/shard/store"
)

// Spot checks during an upload (shard/SPEC.md §8.3). A storage relay can
// answer OK to a PUT and keep nothing; at (10, 5) with a fifth of the
// relays doing so, a segment has six of its fifteen shards on them about
// one time in sixteen, and a 100 MB share has a hundred segments. Once a
// window's uploads are done, its uploader asks each relay that took a
// shard of it, and had not yet passed a check in this share, for one of
// those shards back, over a circuit of its own, while it still holds the
// window. A relay that does not return it is recorded as having lost a
// shard, and every shard of the window it took is stored again elsewhere:
// the upload repairs itself while the shards are in memory, before any
// segment can fall below k.

const (
	// windowsHeld is how many windows an upload keeps for their checks
	// while the next goes out: 2 × 13 MB at (10, 5).
	windowsHeld = 2
	// recheckOdds is the chance, one in recheckOdds, that a relay which
	// passed a check in this share is checked again in a later window:
	// a relay that keeps what it expects to be checked and drops the rest
	// cannot tell checks from fetches, and is caught in time.
	recheckOdds = 8
	// checkWorkers is how many checks of a window run at once.
	checkWorkers = 4
)

// window is one shuffle window of an upload: its uploads still running,
// and which relay took which of its shards.
type window struct {
	pending sync.WaitGroup // the window's uploads, done or given up

	mu   sync.Mutex // guards took
	took map[keys.NodeID][]upload
}

// stored notes that relay took u.
func (w *window) stored(relay keys.NodeID, u upload) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.took[relay] = append(w.took[relay], u)
}

// checker runs one share's spot checks and stores again what failed them.
type checker struct {
	n      *Net
	dial   dialFunc
	ttl    time.Duration
	relays []keys.NodeID
	key    [32]byte
	weight func(keys.NodeID) float64

	mu       sync.Mutex // guards the fields below
	verified map[keys.NodeID]bool
	checked  int // checks made
	failed   int // checks a relay failed
	moved    int // shards stored again after a failed check
	unplaced int // shards a failed check left where they were: no relay left
}

// checkOutcome is what one spot check found.
type checkOutcome int

const (
	checkKept    checkOutcome = iota // the relay returned the shard intact
	checkLost                        // it did not, on every fresh path tried
	checkUnknown                     // no circuit could be tried (no guard) or the share ended
)

// window checks the relays that took shards of win and stores again the
// shards of those that fail. It returns an error only when ctx ends.
func (c *checker) window(ctx context.Context, win *window) error {
	type job struct {
		relay keys.NodeID
		took  []upload
	}
	var jobs []job
	win.mu.Lock()
	for relay, took := range win.took {
		if c.due(relay) {
			jobs = append(jobs, job{relay, took})
		}
	}
	win.mu.Unlock()
	mathrand.Shuffle(len(jobs), func(a, b int) { jobs[a], jobs[b] = jobs[b], jobs[a] })
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex // guards firstErr
		firstErr error
	)
	next := make(chan job)
	for range min(checkWorkers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				if err := c.relay(ctx, j.relay, j.took); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		next <- j
	}
	close(next)
	wg.Wait()
	return firstErr
}

// due reports whether relay is checked in this window: always until it
// has passed a check in this share, always if this client has seen it
// lose a shard, else one time in recheckOdds.
func (c *checker) due(relay keys.NodeID) bool {
	c.mu.Lock()
	verified := c.verified[relay]
	c.mu.Unlock()
	return !verified || c.n.Reliability.Suspect(relay) || mathrand.N(recheckOdds) == 0
}

// relay checks one of the shards relay took in a window and, if it is not
// returned, records the loss and stores every one of them again. Storing
// again is a rescue, not part of the share's promise: a shard for which no
// relay is left stays where it was (the relay said OK to it), and the
// share goes on; only ctx ending is an error.
func (c *checker) relay(ctx context.Context, relay keys.NodeID, took []upload) error {
	u := took[mathrand.N(len(took))]
	switch c.check(ctx, relay, u) {
	case checkUnknown:
		return nil
	case checkKept:
		return nil
	}
	for _, u := range took {
		u.claims.spend(relay)
		if err := c.replace(ctx, u); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.mu.Lock()
			c.unplaced++
			c.mu.Unlock()
			c.n.log().Warn("share: a shard a storage relay did not return could not be stored again; run veil repair later",
				"segment", fmt.Sprintf("%v %d", u.claims.kind, u.claims.index), "err", err)
		}
	}
	return nil
}

// check asks relay for u's shard over fresh circuits, as a fetch does,
// records the outcome in the client's reliability record and returns it.
func (c *checker) check(ctx context.Context, relay keys.NodeID, u upload) checkOutcome {
	outcome := checkLost
	for attempt := 0; attempt < fetchAttempts; attempt++ {
		var data []byte
		err := c.dial(ctx, relay, func(sc *store.Client) error {
			var err error
			data, err = sc.Get(u.shard.ID)
			return err
		})
		if ctx.Err() != nil || errors.Is(err, path.ErrNoGuard) {
			return checkUnknown
		}
		if err == nil && bytes.Equal(data, u.shard.Data) {
			outcome = checkKept
			break
		}
		if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrCorrupt) {
			break // its answer: another path would get the same
		}
		c.n.log().Debug("transfer: spot check failed on the way", "relay", relay.Short(), "attempt", attempt, "err", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checked++
	if outcome == checkKept {
		c.verified[relay] = true
		c.n.Reliability.Kept(relay)
	} else {
		c.failed++
		c.n.Reliability.Lost(relay)
		c.n.log().Debug("transfer: a storage relay did not return a shard it took", "relay", relay.Short())
	}
	return outcome
}

// replace stores u's shard again on another relay of its segment, placed
// with the weights as they are now (the failed relay's has just fallen),
// never on a relay offered another shard of the segment, and checks the
// new relay too unless it has passed a check in this share.
func (c *checker) replace(ctx context.Context, u upload) error {
	cands, err := shard.PlaceWeighted(c.key, u.claims.ids, c.relays, c.weight)
	if err != nil {
		return err
	}
	for {
		// upload walks the list past every relay claimed by another
		// shard of the segment, or spent; u's own relay is spent.
		u.cands = cands[u.i]
		relay, err := c.n.upload(ctx, c.dial, u, c.ttl)
		if err != nil {
			return fmt.Errorf("transfer: storing again a shard a relay dropped: %w", err)
		}
		c.mu.Lock()
		c.moved++
		verified := c.verified[relay]
		c.mu.Unlock()
		if verified || c.check(ctx, relay, u) != checkLost {
			return nil
		}
		u.claims.spend(relay)
	}
}

// report logs what the checks found: the sharer's one sign of relays that
// drop what they take.
func (c *checker) report() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed == 0 {
		c.n.log().Debug("share: spot checks passed", "checks", c.checked)
		return
	}
	c.n.log().Info("share: storage relays did not return shards they took; those shards are stored again elsewhere and the relays weigh less from now on",
		"checks", c.checked, "failed", c.failed, "shards_moved", c.moved, "shards_left", c.unplaced)
}
