package transfer

import (
	"context"
	"sync"
	"time"

	"veil/onion/keys"
	"veil/shard"
)

// segmentFetch is the shards of one segment (or the head) being gathered:
// where each may be, what arrived and from which relay.
type segmentFetch struct {
	ctx     context.Context
	workers int
	stats   *fetchStats
	dec     *shard.Decoder
	ids     [][32]byte
	cands   [][]keys.NodeID
	dial    dialFunc // reaches a relay's store, for a repair's PUTs
	got     [][]byte
	from    []keys.NodeID // the relay that returned got[i]
	asked   []bool
	// offered holds the relays a repair offered a rebuilt shard of this
	// segment to, taken or not; only the repair's goroutine uses it.
	offered map[keys.NodeID]bool
	// one gets shard i from its candidates (Net.getShard; tests replace
	// it). It calls trouble, from its own goroutine, when an attempt
	// failed and it goes on trying: the gather then hedges at once.
	one func(ctx context.Context, i int, trouble func()) ([]byte, keys.NodeID)
	// prefetching is closed when a prefetch has finished; nil if none runs.
	prefetching chan struct{}

	mu sync.Mutex // guards unreachable and absent
	// unreachable says why a relay holding a shard could not be asked at
	// all (path.ErrNoGuard), if that happened: a fetch that fails then
	// says so instead of blaming the relays.
	unreachable error
	// absent[i] holds the relays that answered they have no shard i (or
	// only a damaged one, now dropped): a repair need not ask them again
	// before giving them another shard of the segment.
	absent []map[keys.NodeID]bool
}

func (s *segmentFetch) noteAbsent(i int, relay keys.NodeID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.absent[i] == nil {
		s.absent[i] = map[keys.NodeID]bool{}
	}
	s.absent[i][relay] = true
}

// unknownAt lists the shards of the segment other than i that relay has
// not said it lacks: what a repair asks it about before giving it shard i.
func (s *segmentFetch) unknownAt(relay keys.NodeID, i int) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for j := range s.ids {
		if j != i && !s.absent[j][relay] {
			out = append(out, j)
		}
	}
	return out
}

// holdsOne reports whether relay returned a shard of the segment in this
// repair, or was offered one by it.
func (s *segmentFetch) holdsOne(relay keys.NodeID) bool {
	for j, from := range s.from {
		if s.got[j] != nil && from == relay {
			return true
		}
	}
	return s.offered[relay]
}

func (s *segmentFetch) noteUnreachable(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unreachable == nil {
		s.unreachable = err
	}
}

func (s *segmentFetch) unreachableErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unreachable
}

func newSegmentFetch(ctx context.Context, workers, shards int, stats *fetchStats) *segmentFetch {
	return &segmentFetch{ctx: ctx, workers: workers, stats: stats, got: make([][]byte, shards), from: make([]keys.NodeID, shards),
		asked: make([]bool, shards), offered: map[keys.NodeID]bool{}, absent: make([]map[keys.NodeID]bool, shards)}
}

// pending is how many shards have not been asked for yet.
func (s *segmentFetch) pending() int {
	k := 0
	for _, a := range s.asked {
		if !a {
			k++
		}
	}
	return k
}

// next is the shard to ask for next: the first not asked yet whose relay
// has not failed in this fetch, else the first not asked yet; -1 if none.
func (s *segmentFetch) next() int {
	fallback := -1
	for i, a := range s.asked {
		if a {
			continue
		}
		if i < len(s.cands) && len(s.cands[i]) > 0 && s.stats.isFailed(s.cands[i][0]) {
			if fallback < 0 {
				fallback = i
			}
			continue
		}
		return i
	}
	return fallback
}

// prefetch runs get in the background; the next get waits for it first.
func (s *segmentFetch) prefetch(wg *sync.WaitGroup, upto, enough int) {
	done := make(chan struct{})
	s.prefetching = done
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		s.gather(upto, enough)
	}()
}

// get asks, in parallel, for shards not asked for yet until upto have been
// asked in all, and returns the shards gathered so far. With enough > 0 it
// returns as soon as enough have arrived (at once if they already have),
// cancelling the requests still running, so a slow relay or path does not
// hold up the segment; an abandoned shard may be asked again by a later
// get. Until then it hedges: a request that fails, reports trouble or runs
// past the hedge delay has another shard asked for in its place. With
// enough == 0 it waits for every request and does not hedge.
func (s *segmentFetch) get(upto, enough int) [][]byte {
	if p := s.prefetching; p != nil {
		<-p
		s.prefetching = nil
	}
	return s.gather(upto, enough)
}

// event is a request's news: its end (data nil if it failed or was
// cancelled), or trouble while it goes on.
type event struct {
	i       int
	trouble bool
	data    []byte
	from    keys.NodeID
	took    time.Duration
}

// request is one shard request in flight.
type request struct {
	start  time.Time
	hedged bool // another shard was asked for beside it
}

// gather is get without waiting for a prefetch. It owns the requests'
// goroutines and returns only once every one has ended.
func (s *segmentFetch) gather(upto, enough int) [][]byte {
	arrived := 0
	for _, g := range s.got {
		if g != nil {
			arrived++
		}
	}
	if enough > 0 && arrived >= enough {
		return s.got
	}
	began := time.Now()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	// Each request sends at most one trouble and one end, so they never
	// block on a full channel.
	events := make(chan event, 2*len(s.got))
	inflight := map[int]*request{}
	var started, hedged, exhausted int
	start := func() bool {
		i := s.next()
		if i < 0 || len(inflight) >= s.workers {
			return false
		}
		s.asked[i] = true
		inflight[i] = &request{start: time.Now()}
		started++
		go func() {
			troubled := false
			trouble := func() {
				if !troubled {
					troubled = true
					events <- event{i: i, trouble: true}
				}
			}
			t0 := time.Now()
			data, from := s.one(ctx, i, trouble)
			events <- event{i: i, data: data, from: from, took: time.Since(t0)}
		}()
		return true
	}
	// hedge asks for another shard beside request r, once.
	hedge := func(r *request) {
		if r.hedged || enough == 0 || ctx.Err() != nil {
			return
		}
		r.hedged = true
		if start() {
			hedged++
		}
	}
	for nAsked := len(s.asked) - s.pending(); nAsked < upto && start(); nAsked++ {
	}
	cancelled := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for len(inflight) > 0 {
		var timeout <-chan time.Time
		oldest := s.oldestUnhedged(inflight)
		if oldest != nil && enough > 0 && ctx.Err() == nil {
			timer.Reset(time.Until(oldest.start.Add(s.stats.hedgeDelay())))
			timeout = timer.C
		}
		select {
		case <-timeout:
			// Slower than its peers: ask another shard beside it.
			hedge(oldest)
		case ev := <-events:
			r := inflight[ev.i]
			if ev.trouble {
				hedge(r)
				continue
			}
			delete(inflight, ev.i)
			switch {
			case ev.data != nil:
				s.got[ev.i], s.from[ev.i] = ev.data, ev.from
				s.stats.succeeded(ev.from, ev.took)
				if arrived++; enough > 0 && arrived >= enough && ctx.Err() == nil {
					cancelled = len(inflight)
					cancel()
				}
			case ctx.Err() != nil && s.ctx.Err() == nil:
				s.asked[ev.i] = false // abandoned, not missing
			default:
				// No relay had it: ask another in its place.
				if enough > 0 && arrived < enough {
					exhausted++
				}
				hedge(r)
			}
		}
	}
	took := time.Duration(0)
	if enough > 0 {
		took = time.Since(began)
	}
	s.stats.count(started, hedged, cancelled, exhausted, took)
	return s.got
}

// oldestUnhedged is the request in flight longest that has not been hedged.
func (s *segmentFetch) oldestUnhedged(inflight map[int]*request) *request {
	var oldest *request
	for _, r := range inflight {
		if !r.hedged && (oldest == nil || r.start.Before(oldest.start)) {
			oldest = r
		}
	}
	return oldest
}
