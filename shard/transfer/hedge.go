package transfer

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"veil/directory"
	"veil/onion/keys"
)

// A fetch hedges its shard requests (shard/SPEC.md §8, "Transport"): any k
// shards of a segment rebuild it, so a request that is slow beside its
// peers, or whose circuit or relay failed, is not waited for: another shard
// of the segment is asked for at once, and whichever requests are still
// running once k shards are in are cancelled (as Storj cancels its long
// tail). Hedges are bounded (G9): a gather asks each shard of a segment at
// most once, so a segment never has more than n requests in flight, and
// each request starts at most one hedge.
const (
	// hedgeFactor is how many times slower than the fetch's typical
	// shard request a request may run before another shard is asked for:
	// on the testnet requests take 20–100 ms and vary about twofold under
	// load, so four times is well outside that spread.
	hedgeFactor = 4
	// hedgeFloor is the earliest a request is hedged: a circuit build and
	// a shard of up to 1.4 MB on a loaded 2-core machine take 100–200 ms,
	// and hedging sooner would only add load.
	hedgeFloor = 250 * time.Millisecond
	// hedgeCeiling is the latest a request is hedged, and the delay before
	// any request of the fetch has finished: a live relay answers well
	// within it, and a relay the consensus still lists after it died
	// holds each circuit for the middle's 3 s wait for its descriptor
	// (relay knownWait) before failing it.
	hedgeCeiling = 2 * time.Second
	// latencyWeight is the weight, 1/latencyWeight, of each new request
	// in the running estimate of a typical one: it follows a change in
	// load within a few segments without jumping at one slow request.
	latencyWeight = 8
)

// fetchStats is what one fetch learns across its segments: how long a shard
// request typically takes, and which relays failed; and what it did about
// it, for the log line that ends the fetch.
type fetchStats struct {
	// ceiling is hedgeCeiling; tests raise it to tell a hedge on
	// trouble from one on time.
	ceiling time.Duration

	mu      sync.Mutex // guards the following fields
	typical time.Duration
	// failed holds the relays an attempt failed on (a circuit that could
	// not be built to them or died on the way), until one answers again:
	// their shards are asked for last.
	failed map[keys.NodeID]bool
	// failures counts the failed attempts on each relay, for the log.
	failures  map[keys.NodeID]int
	requests  int // shard requests started
	hedged    int // of those, started because another was slow or failed
	cancelled int // requests cancelled because k shards were already in
	// exhausted counts requests that ran out of relays to try while their
	// segment still waited for them: the long tail hedging is there to
	// cut (a shard on a dead relay is tried for fetchAttempts circuits,
	// then asked of every other relay).
	exhausted int
	// slowest is the longest a segment waited for its k shards.
	slowest time.Duration
	// refused counts shards that arrived and failed their hash check:
	// a relay served damaged data and the decoder would not use it.
	refused int
}

func newFetchStats() *fetchStats {
	return &fetchStats{ceiling: hedgeCeiling, failed: map[keys.NodeID]bool{}, failures: map[keys.NodeID]int{}}
}

// hedgeDelay is how long a request may run before it is hedged.
func (f *fetchStats) hedgeDelay() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.typical == 0 {
		return f.ceiling
	}
	return min(max(hedgeFactor*f.typical, hedgeFloor), f.ceiling)
}

// succeeded notes a request that brought its shard from relay in took.
func (f *fetchStats) succeeded(relay keys.NodeID, took time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.failed, relay)
	if f.typical == 0 {
		f.typical = took
	} else {
		f.typical += (took - f.typical) / latencyWeight
	}
}

// fail notes an attempt that failed on relay. The circuit may have died at
// its middle rather than at the relay; the mark only moves the relay's
// shards to the back of the queue, and its next answer clears it.
func (f *fetchStats) fail(relay keys.NodeID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed[relay] = true
	f.failures[relay]++
}

func (f *fetchStats) isFailed(relay keys.NodeID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed[relay]
}

// count adds one gather's requests to the totals; took is how long it
// waited for its shards, 0 if it waited for all it asked (no hedging).
func (f *fetchStats) count(requests, hedged, cancelled, exhausted int, took time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests += requests
	f.hedged += hedged
	f.cancelled += cancelled
	f.exhausted += exhausted
	f.slowest = max(f.slowest, took)
}

// log writes the fetch's summary: the process tests read it to see that a
// relay killed mid-fetch was routed around (cmd/veil fetch_test.go).
func (f *fetchStats) log(l *slog.Logger, byID map[keys.NodeID]directory.Entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := func(id keys.NodeID) string {
		if e, ok := byID[id]; ok {
			return e.Descriptor.Nickname
		}
		return id.Short()
	}
	var failed, failures []string
	for id := range f.failed {
		failed = append(failed, name(id))
	}
	for id, n := range f.failures {
		failures = append(failures, fmt.Sprintf("%s:%d", name(id), n))
	}
	slices.Sort(failed)
	slices.Sort(failures)
	l.Debug("transfer: shard requests", "requests", f.requests, "hedged", f.hedged,
		"cancelled", f.cancelled, "exhausted", f.exhausted, "refused", f.refused, "typical", f.typical.Round(time.Millisecond),
		"slowest_segment", f.slowest.Round(time.Millisecond), "failed_relays", failed, "failures", failures)
}
