package transfer

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"veil/onion/keys"
)

// TestGetDropsTheSlowest: asked for k + 1 shards and told k are enough,
// get returns once k arrive; the slow one is abandoned, not counted
// missing, and a later get asks for it again.
func TestGetDropsTheSlowest(t *testing.T) {
	s := newSegmentFetch(context.Background(), 8, 5, newFetchStats())
	var asked atomic.Int32
	slow := make(chan struct{})
	s.one = func(ctx context.Context, i int, trouble func()) ([]byte, keys.NodeID) {
		asked.Add(1)
		if i == 1 && slow != nil {
			select {
			case <-ctx.Done():
				return nil, keys.NodeID{}
			case <-slow:
			}
		}
		return []byte{byte(i)}, keys.NodeID{byte(i)}
	}
	done := make(chan [][]byte)
	go func() { done <- s.get(4, 3) }()
	var got [][]byte
	select {
	case got = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("get waited for the slowest shard")
	}
	if got[0] == nil || got[1] != nil || got[2] == nil || got[3] == nil || got[4] != nil {
		t.Fatalf("got %v, want shards 0, 2 and 3", got)
	}
	if n := s.pending(); n != 2 {
		t.Fatalf("%d shards left to ask, want 2 (the abandoned one and the one not asked)", n)
	}
	close(slow)
	slow = nil
	got = s.get(5, 0)
	for i, g := range got {
		if len(g) != 1 || g[0] != byte(i) || s.from[i][0] != byte(i) {
			t.Fatalf("after asking for the rest, shard %d = %v from %v", i, g, s.from[i])
		}
	}
	// Shard 1 was asked twice, unless get gave up on it before its
	// first try began.
	if n := asked.Load(); n != 5 && n != 6 {
		t.Fatalf("asked %d times, want 5 or 6", n)
	}
}

// TestGetKeepsMissingShardsAsked: a shard no relay has stays asked, so
// asking for the rest does not try it again.
func TestGetKeepsMissingShardsAsked(t *testing.T) {
	s := newSegmentFetch(context.Background(), 2, 3, newFetchStats())
	s.one = func(ctx context.Context, i int, trouble func()) ([]byte, keys.NodeID) {
		if i == 0 {
			return nil, keys.NodeID{}
		}
		return []byte{1}, keys.NodeID{}
	}
	s.get(2, 0)
	if s.pending() != 1 || !s.asked[0] {
		t.Fatalf("asked %v", s.asked)
	}
}

// TestPrefetchThenGet: get after a prefetch waits for it and asks for
// nothing twice.
func TestPrefetchThenGet(t *testing.T) {
	s := newSegmentFetch(context.Background(), 4, 5, newFetchStats())
	var asked atomic.Int32
	s.one = func(ctx context.Context, i int, trouble func()) ([]byte, keys.NodeID) {
		asked.Add(1)
		return []byte{byte(i)}, keys.NodeID{}
	}
	var wg sync.WaitGroup
	s.prefetch(&wg, 4, 3)
	got := s.get(4, 3)
	wg.Wait()
	n := 0
	for _, g := range got {
		if g != nil {
			n++
		}
	}
	if n < 3 || asked.Load() > 4 {
		t.Fatalf("%d shards after %d asks", n, asked.Load())
	}
}
