package seed

import (
	"context"
	"slices"
	"sync"
	"time"

	"veil/directory"
	"veil/onion/keys"
)

// Bandwidth measurement (directory/SPEC.md §5.6). A relay's claimed
// bandwidth costs nothing to inflate, and path selection follows weight,
// so a seed times each relay itself, as Tor's bandwidth authorities do
// with sbws, and signs what it measured. Clients take the median over the
// seeds, and a relay's claim only caps it.

// Measurer times one relay and returns bytes a second; relay/client's
// Measure is the real one.
type Measurer func(ctx context.Context, e directory.Entry) (float64, error)

const (
	// measureEvery is how often each relay is measured, in consensus
	// intervals: every 10 minutes with the default 60 s interval.
	measureEvery = 10
	// measureKeep is how many recent measurements make a relay's figure:
	// their median, so one run on a busy moment moves nothing.
	measureKeep = 3
	// measureParallel bounds the measurements at once: each saturates
	// the seed's link to the relay for a moment, and two at once would
	// share the seed's own capacity and measure each other.
	measureParallel = 1
	// measureTimeout bounds one measurement; a relay that cannot take a
	// MiB in that time is slow, and keeps its last figures.
	measureTimeout = 20 * time.Second
)

// bandwidths holds what the seed measured, by node ID (never by name).
type bandwidths struct {
	mu   sync.Mutex
	runs map[keys.NodeID][]float64 // the last measureKeep results, bytes/s
	at   map[keys.NodeID]time.Time // when last measured (or tried)
}

// weight is a relay's consensus weight in KiB/s: the median of its recent
// measurements, 0 if it has none.
func (b *bandwidths) weight(id keys.NodeID) uint32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	rs := slices.Clone(b.runs[id])
	if len(rs) == 0 {
		return 0
	}
	slices.Sort(rs)
	kib := rs[len(rs)/2] / 1024
	return uint32(min(max(kib, 1), float64(^uint32(0))))
}

func (b *bandwidths) due(id keys.NodeID, now time.Time, every time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	at, ok := b.at[id]
	return !ok || now.Sub(at) >= every
}

func (b *bandwidths) record(id keys.NodeID, now time.Time, bps float64, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.runs == nil {
		b.runs, b.at = map[keys.NodeID][]float64{}, map[keys.NodeID]time.Time{}
	}
	b.at[id] = now
	if ok {
		rs := append(b.runs[id], bps)
		b.runs[id] = rs[max(0, len(rs)-measureKeep):]
	}
}

// forget drops relays no longer listed, so the tables stay as small as
// the network.
func (b *bandwidths) forget(keep map[keys.NodeID]bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id := range b.at {
		if !keep[id] {
			delete(b.at, id)
			delete(b.runs, id)
		}
	}
}

// MeasureBandwidth measures, until ctx ends, every Running relay of the
// seed's latest consensus that is due, one at a time, and makes the
// results the weights of the consensuses it signs. The caller owns the
// goroutine it runs in.
func (s *Seed) MeasureBandwidth(ctx context.Context, m Measurer) {
	interval := s.cfg.ConsensusInterval.D()
	every := measureEvery * interval
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c := s.Latest()
		if c == nil {
			continue
		}
		listed := map[keys.NodeID]bool{}
		for _, e := range c.Relays {
			listed[e.Descriptor.NodeID()] = true
		}
		s.bw.forget(listed)
		for _, e := range c.Relays {
			id := e.Descriptor.NodeID()
			if e.Flags&directory.FlagRunning == 0 || !s.bw.due(id, s.now(), every) {
				continue
			}
			mctx, cancel := context.WithTimeout(ctx, measureTimeout)
			bps, err := m(mctx, e)
			cancel()
			if ctx.Err() != nil {
				return
			}
			s.bw.record(id, s.now(), bps, err == nil)
			if err != nil {
				s.log.Debug("bandwidth measurement failed", "node", id.Short(), "err", err)
				continue
			}
			s.log.Debug("bandwidth measured", "node", id.Short(), "kib_per_s", int(bps/1024))
		}
	}
}
