package relay

import (
	"cmp"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"veil/onion"
	"veil/relay/link"
)

const (
	// memCheckInterval is how often the relay compares what it holds with
	// its memory cap. Windows bound how fast queues can grow (a few MB per
	// circuit), so a tenth of a second overshoots by little.
	memCheckInterval = 100 * time.Millisecond
	// stillFor is how long a link must have taken no byte, its writer
	// waiting all the while for the peer to make room, before the
	// governor blames the link's peer for what waits on it. The kernel
	// says the peer's window is closed, so this needs no margin for the
	// relay's own load: half a second is many round trips.
	stillFor = 500 * time.Millisecond
	// exitStillFor is the same for exit streams whose destinations have
	// taken nothing. Nothing tells whether a destination or this relay's
	// own load holds a stream up (a relay busy with a burst can leave an
	// honest stream unserved for most of a second), so it is longer.
	exitStillFor = 2 * time.Second
	// stuckLinkAfter is how long a link must have written nothing, with
	// cells queued, before the governor closes it to get under the cap.
	// A peer that reads at all takes bytes every round trip; five seconds
	// also spare one whose writer waits on the kernel, which wakes it only
	// once half the socket's buffer has drained. Until then what its send
	// queue holds is counted as on its way out, as every link's is: a
	// send queue is bounded, and it costs no one else a circuit.
	stuckLinkAfter = 5 * time.Second
)

// errLinkStuck is why the governor closes a link.
var errLinkStuck = errors.New("relay: link closed under the memory cap: its peer stopped reading")

// memory tracks what the relay holds in queues: cells waiting on links
// and stream data waiting for slow destinations at the exit.
type memory struct {
	mu sync.Mutex // guards links and the closed totals
	// links maps each link to what the governor saw of it at its last
	// check.
	links map[*link.Link]*linkWatch
	// closedCellsIn and closedCellsOut are the cells links carried
	// before they closed, so the totals in /metrics never go back.
	closedCellsIn, closedCellsOut uint64

	// The governor's goroutine alone uses the following fields.
	// exits is links' counterpart for the circuits whose exit streams
	// hold data.
	exits map[*relayCircuit]*exitWatch
	// overSince is when the relay went over its cap, zero while under.
	overSince time.Time
}

// linkWatch is what the governor remembers of a link between checks, to
// tell a peer that reads from one that has stopped.
type linkWatch struct {
	written uint64 // the link's Stats().Written at the last check
	// movedAt is when it was last seen writing, holding nothing, or not
	// waiting for its peer.
	movedAt time.Time
}

// exitWatch is what the governor remembers of a circuit's exit streams:
// when their oldest queued byte arrived, which changes whenever their
// destinations take what was at the head.
type exitWatch struct {
	oldest  time.Time
	movedAt time.Time
}

// circuitLimits is the memory governor's state of a circuit.
type circuitLimits struct {
	// overQueued is set by the first cell that found the circuit's queue
	// on a link at link.MaxCircuitQueue, which destroys it.
	overQueued atomic.Bool
}

func (m *memory) addLink(l *link.Link) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.links == nil {
		m.links = map[*link.Link]*linkWatch{}
	}
	m.links[l] = &linkWatch{movedAt: time.Now()}
}

func (m *memory) removeLink(l *link.Link) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.links[l]; ok {
		st := l.Stats()
		m.closedCellsIn += st.CellsIn
		m.closedCellsOut += st.CellsOut
	}
	delete(m.links, l)
}

// linkUse is one link's queue at a check.
type linkUse struct {
	l      *link.Link
	queued int       // cells queued, waiting ones included
	since  time.Time // when its peer last took a byte, or it held nothing or waited on no one
}

// watchLinks looks at every link: what each holds, and since when it has
// held cells without its peer taking any.
func (m *memory) watchLinks(now time.Time) []linkUse {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]linkUse, 0, len(m.links))
	for l, w := range m.links {
		st := l.Stats()
		if st.Queued == 0 || st.Written != w.written || !st.WaitingForPeer {
			w.movedAt = now
		}
		w.written = st.Written
		out = append(out, linkUse{l: l, queued: st.Queued, since: w.movedAt})
	}
	return out
}

// governMemory enforces max_memory until the relay stops (G9).
func (e *engine) governMemory() {
	limit := int(e.r.cfg.MaxMemory)
	t := time.NewTicker(memCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		e.enforceMemory(limit, time.Now())
	}
}

// holder is a circuit and what destroying it frees at once: its cells
// waiting on links and its exit streams' data.
type holder struct {
	circ  *relayCircuit
	bytes int
	// blameAt is when one of its queues will have stood still long
	// enough to blame: stillFor after its link's peer last took a byte,
	// or exitStillFor after its destinations last took one. A peer or
	// destination that stopped reading makes it early; one that reads,
	// however slowly, keeps putting it off.
	blameAt time.Time
}

// enforceMemory gets what the relay holds back under limit, making those
// who stopped reading pay for it (G9). Much as Tor's OOM handler kills the
// circuits with the oldest queued cells, it blames the queues that have
// stood still longest: a peer's stands still from the moment it stopped
// reading, while the queues of peers and destinations that read keep
// moving, however slowly (the age of a queue's oldest byte would not tell
// a slow honest destination from a dead one). In order:
//
//  1. Links stuck for stuckLinkAfter are closed, which frees all they
//     hold and ends their circuits.
//  2. Every other link's send queue is counted as on its way out: it is
//     bounded, and drains by itself or is closed by step 1 later, so it is
//     never a reason to destroy anyone's circuit.
//  3. Circuits with a queue that has stood still long enough to blame
//     (stillFor, exitStillFor) are destroyed, the longest still first:
//     the circuits whose cells wait on a link whose peer does not read,
//     and those whose destinations do not read.
//  4. If the relay has been over its cap for stillFor and still is, the
//     circuits that hold most are destroyed, whoever they are: honest
//     load past the cap.
func (e *engine) enforceMemory(limit int, now time.Time) {
	links := e.mem.watchLinks(now)
	total := 0
	for _, u := range links {
		total += u.queued * onion.CellSize
	}
	type exitUse struct {
		bytes int
		since time.Time
	}
	var circs []*relayCircuit
	exits := map[*relayCircuit]exitUse{}
	seen := map[*relayCircuit]bool{}
	watched := e.mem.exits
	e.mem.exits = map[*relayCircuit]*exitWatch{}
	for _, circ := range e.circs.all() {
		if seen[circ] {
			continue
		}
		seen[circ] = true
		circs = append(circs, circ)
		ex := circ.exitStreams()
		if ex == nil {
			continue
		}
		if b, oldest := ex.Queued(); b > 0 {
			w := watched[circ]
			if w == nil || !w.oldest.Equal(oldest) {
				w = &exitWatch{oldest: oldest, movedAt: now}
			}
			e.mem.exits[circ] = w
			exits[circ] = exitUse{b, w.movedAt}
			total += b
		}
	}
	if total <= limit {
		e.mem.overSince = time.Time{}
		return
	}
	if e.mem.overSince.IsZero() {
		e.mem.overSince = now
	}
	held := total

	// 1 and 2: stuck links, then every send queue.
	slices.SortFunc(links, func(a, b linkUse) int { return a.since.Compare(b.since) })
	since := make(map[*link.Link]time.Time, len(links))
	var closed int
	for _, u := range links {
		if u.queued == 0 {
			continue
		}
		if total > limit && now.Sub(u.since) >= stuckLinkAfter {
			u.l.Abort(errLinkStuck)
			total -= u.queued * onion.CellSize
			closed++
			continue
		}
		since[u.l] = u.since
		total -= (u.queued - u.l.Stats().Waiting) * onion.CellSize
	}

	// 3 and 4: circuits, charged what they hold.
	var hs []holder
	blameFrom := func(h *holder, at time.Time) {
		if h.blameAt.IsZero() || at.Before(h.blameAt) {
			h.blameAt = at
		}
	}
	for _, circ := range circs {
		h := holder{circ: circ}
		for _, hp := range []hop{circ.prev, nextHop(circ)} {
			s, ok := since[hp.l]
			if !ok {
				continue // no link, nothing queued, or closed above
			}
			if _, waiting := hp.l.CircuitQueued(hp.id); waiting > 0 {
				h.bytes += waiting * onion.CellSize
				blameFrom(&h, s.Add(stillFor))
			}
		}
		if x, ok := exits[circ]; ok {
			h.bytes += x.bytes
			blameFrom(&h, x.since.Add(exitStillFor))
		}
		if h.bytes > 0 {
			hs = append(hs, h)
		}
	}
	blamed := func(h holder) bool { return !now.Before(h.blameAt) }
	slices.SortFunc(hs, func(a, b holder) int {
		if ba, bb := blamed(a), blamed(b); ba != bb {
			if ba {
				return -1
			}
			return 1
		}
		if blamed(a) {
			return a.blameAt.Compare(b.blameAt)
		}
		return cmp.Compare(b.bytes, a.bytes)
	})
	var destroyed, unblamed int
	for _, h := range hs {
		if total <= limit || (!blamed(h) && now.Sub(e.mem.overSince) < stillFor) {
			break
		}
		if !blamed(h) {
			unblamed++
		}
		e.destroy(h.circ, hop{}, onion.DestroyResourceLimit)
		total -= h.bytes
		destroyed++
	}
	if destroyed > 0 || closed > 0 {
		e.log.Warn("memory cap reached: destroyed the circuits whose queues stood still, and closed stuck links",
			"held", held, "cap", limit, "circuits", destroyed, "of_them_not_still", unblamed, "links", closed)
	}
}

// nextHop returns the circuit's hop away from the client, or the one
// being created, or the zero hop.
func nextHop(circ *relayCircuit) hop {
	circ.mu.Lock()
	defer circ.mu.Unlock()
	if circ.next.l != nil {
		return circ.next
	}
	return circ.pending
}

// overQueued destroys the circuit whose cell found its queue on l at
// link.MaxCircuitQueue: its sender ignores its flow-control window. It
// runs the destroy on a goroutine of its own, since send's caller may
// hold the circuit's lock (backward cells are queued under it), and only
// once per circuit however many cells follow.
func (e *engine) overQueued(l *link.Link, id uint32) {
	circ := e.circs.get(hop{l, id})
	if circ == nil || !circ.limits.overQueued.CompareAndSwap(false, true) {
		return
	}
	e.log.Debug("circuit destroyed: more cells queued than its windows allow", "max", link.MaxCircuitQueue)
	e.goTracked(func() { e.destroy(circ, hop{}, onion.DestroyResourceLimit) })
}
