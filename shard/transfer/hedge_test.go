package transfer

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"veil/onion/keys"
)

// hangAfter bounds a get that should return at once: it only detects a
// hang, so it is generous for a loaded machine running -race.
const hangAfter = time.Minute

// getWithin runs s.get(upto, enough) and fails the test if it hangs.
func getWithin(t *testing.T, s *segmentFetch, upto, enough int) [][]byte {
	t.Helper()
	done := make(chan [][]byte, 1)
	go func() { done <- s.get(upto, enough) }()
	select {
	case got := <-done:
		return got
	case <-time.After(hangAfter):
		t.Fatalf("get(%d, %d) still waiting after %v", upto, enough, hangAfter)
		return nil
	}
}

// askLog records which shards one asked for, in order.
type askLog struct {
	mu    sync.Mutex
	asked []int
}

func (a *askLog) add(i int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, i)
}

func (a *askLog) list() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int(nil), a.asked...)
}

// stuck waits for the request to be cancelled, as a request on a circuit
// to a relay that stopped answering does.
func stuck(ctx context.Context) ([]byte, keys.NodeID) {
	<-ctx.Done()
	return nil, keys.NodeID{}
}

// TestGetReturnsOnceEnoughArrived: a prefetch got k shards and abandoned
// the slowest; the get that follows must not ask for the abandoned one
// again and wait for it. (This is what stalled fetches for 12 s a segment
// with a storage relay killed: each get asked the dead relay again.)
func TestGetReturnsOnceEnoughArrived(t *testing.T) {
	s := newSegmentFetch(context.Background(), 8, 5, newFetchStats())
	var log askLog
	s.one = func(ctx context.Context, i int, trouble func()) ([]byte, keys.NodeID) {
		log.add(i)
		if i == 0 {
			return stuck(ctx)
		}
		return []byte{byte(i)}, keys.NodeID{byte(i)}
	}
	var wg sync.WaitGroup
	s.prefetch(&wg, 4, 3)
	wg.Wait()
	if n := len(log.list()); n != 4 {
		t.Fatalf("the prefetch asked %v, want 4 shards", log.list())
	}
	s.one = func(ctx context.Context, i int, trouble func()) ([]byte, keys.NodeID) {
		t.Errorf("get asked for shard %d with 3 of 3 already in", i)
		return stuck(ctx)
	}
	got := getWithin(t, s, 4, 3)
	if got[1] == nil || got[2] == nil || got[3] == nil {
		t.Fatalf("got %v", got)
	}
}

// TestGatherReplacesAFailedRequest: two of the k+1 shards asked for are on
// no relay; the others are asked for in their place within the same get.
func TestGatherReplacesAFailedRequest(t *testing.T) {
	s := newSegmentFetch(context.Background(), 8, 5, newFetchStats())
	s.one = func(ctx context.Context, i int, trouble func()) ([]byte, keys.NodeID) {
		if i < 2 {
			return nil, keys.NodeID{}
		}
		return []byte{byte(i)}, keys.NodeID{byte(i)}
	}
	got := getWithin(t, s, 4, 3)
	if got[2] == nil || got[3] == nil || got[4] == nil {
		t.Fatalf("got %v, want shards 2, 3 and 4", got)
	}
	if s.stats.hedged != 1 {
		t.Fatalf("hedged %d, want 1 (shard 4 in place of 0 or 1; no shard was left for the other)", s.stats.hedged)
	}
}

// TestGatherHedgesOnTrouble: a request whose attempt failed (its circuit
// died) and that goes on trying has another shard asked for beside it at
// once, and is cancelled once k are in.
func TestGatherHedgesOnTrouble(t *testing.T) {
	stats := newFetchStats()
	stats.ceiling = time.Hour // no hedge on time: only trouble can end the get
	s := newSegmentFetch(context.Background(), 8, 5, stats)
	var log askLog
	s.one = func(ctx context.Context, i int, trouble func()) ([]byte, keys.NodeID) {
		log.add(i)
		if i == 0 {
			trouble()
			return stuck(ctx)
		}
		return []byte{byte(i)}, keys.NodeID{byte(i)}
	}
	got := getWithin(t, s, 3, 3)
	if got[1] == nil || got[2] == nil || got[3] == nil || got[0] != nil {
		t.Fatalf("got %v, want shards 1, 2 and 3", got)
	}
	if s.asked[0] || s.stats.cancelled != 1 {
		t.Fatalf("the stuck request was not cancelled and abandoned: asked %v, cancelled %d", s.asked, s.stats.cancelled)
	}
}

// TestGatherHedgesASlowRequest: a request that runs past the hedge delay
// (here the floor: the typical request took 1 ms) has another shard asked
// for beside it.
func TestGatherHedgesASlowRequest(t *testing.T) {
	stats := newFetchStats()
	stats.succeeded(keys.NodeID{9}, time.Millisecond)
	if d := stats.hedgeDelay(); d != hedgeFloor {
		t.Fatalf("hedge delay %v after a 1 ms request, want the floor %v", d, hedgeFloor)
	}
	s := newSegmentFetch(context.Background(), 8, 5, stats)
	s.one = func(ctx context.Context, i int, trouble func()) ([]byte, keys.NodeID) {
		if i == 1 {
			return stuck(ctx)
		}
		return []byte{byte(i)}, keys.NodeID{byte(i)}
	}
	got := getWithin(t, s, 3, 3)
	if got[0] == nil || got[2] == nil || got[3] == nil {
		t.Fatalf("got %v, want shards 0, 2 and 3", got)
	}
	if stats.hedged != 1 || stats.requests != 4 {
		t.Fatalf("%d requests, %d hedged; want 4 and 1", stats.requests, stats.hedged)
	}
}

// TestHedgesAreBounded: with every request stuck, a get asks each shard
// of the segment once and no more (G9), however long it waits.
func TestHedgesAreBounded(t *testing.T) {
	stats := newFetchStats()
	stats.succeeded(keys.NodeID{9}, time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	s := newSegmentFetch(ctx, 8, 5, stats)
	var asks atomic.Int32
	s.one = func(ctx context.Context, i int, trouble func()) ([]byte, keys.NodeID) {
		asks.Add(1)
		trouble()
		trouble() // a second trouble from one request starts nothing more
		return stuck(ctx)
	}
	// Several hedge delays: every hedge there is to start has started.
	time.AfterFunc(4*hedgeFloor, cancel)
	getWithin(t, s, 4, 3)
	if n := asks.Load(); n != 5 {
		t.Fatalf("asked %d times for 5 shards", n)
	}
}

// TestFailedRelaysAreAskedLast: once a relay has failed in a fetch, the
// next segments ask for the shards on other relays first.
func TestFailedRelaysAreAskedLast(t *testing.T) {
	stats := newFetchStats()
	dead := keys.NodeID{1}
	stats.fail(dead)
	s := newSegmentFetch(context.Background(), 8, 5, stats)
	s.cands = [][]keys.NodeID{{{0}}, {dead}, {{2}}, {{3}}, {{4}}}
	var log askLog
	s.one = func(ctx context.Context, i int, trouble func()) ([]byte, keys.NodeID) {
		log.add(i)
		return []byte{byte(i)}, s.cands[i][0]
	}
	getWithin(t, s, 4, 3)
	for _, i := range log.list() {
		if i == 1 {
			t.Fatalf("asked %v: shard 1, on the failed relay, among the first k+1", log.list())
		}
	}
	// An answer from the relay clears it.
	stats.succeeded(dead, time.Millisecond)
	if stats.isFailed(dead) {
		t.Fatal("a relay that answered is still marked failed")
	}
}
