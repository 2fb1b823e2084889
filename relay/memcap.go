package relay

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"veil/onion"
	"veil/relay/link"
)

// memCheckInterval is how often the relay compares what it holds with its
// memory cap. Windows bound how fast queues can grow (a few MB per
// circuit), so a tenth of a second overshoots by little.
const memCheckInterval = 100 * time.Millisecond

// memory tracks what the relay holds in queues: cells waiting on links
// and stream data waiting for slow destinations at the exit.
type memory struct {
	mu    sync.Mutex // guards links
	links map[*link.Link]struct{}
}

func (m *memory) addLink(l *link.Link) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.links == nil {
		m.links = map[*link.Link]struct{}{}
	}
	m.links[l] = struct{}{}
}

func (m *memory) removeLink(l *link.Link) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.links, l)
}

func (m *memory) linkBytes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for l := range m.links {
		n += l.Stats().Queued * onion.CellSize
	}
	return n
}

// governMemory enforces max_memory until the relay stops: past it, the
// circuits holding the oldest queued data are destroyed (reason
// RESOURCELIMIT) until the relay is back under the cap, and the relay
// keeps serving everyone else (G9).
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
		e.enforceMemory(limit)
	}
}

func (e *engine) enforceMemory(limit int) {
	type holder struct {
		circ   *relayCircuit
		bytes  int
		oldest time.Time
	}
	total := e.mem.linkBytes()
	var hs []holder
	seen := map[*relayCircuit]bool{}
	for _, circ := range e.circs.all() {
		if seen[circ] {
			continue
		}
		seen[circ] = true
		if ex := circ.exitStreams(); ex != nil {
			if b, at := ex.Queued(); b > 0 {
				hs = append(hs, holder{circ, b, at})
				total += b
			}
		}
	}
	if total <= limit {
		return
	}
	slices.SortFunc(hs, func(a, b holder) int { return cmp.Compare(a.oldest.UnixNano(), b.oldest.UnixNano()) })
	for _, h := range hs {
		if total <= limit {
			break
		}
		e.log.Warn("memory cap reached: destroying the circuit with the oldest queued data",
			"held", total, "cap", limit, "circuit_bytes", h.bytes)
		e.destroy(h.circ, hop{}, onion.DestroyResourceLimit)
		total -= h.bytes
	}
}
