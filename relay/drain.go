package relay

import (
	"context"
	"fmt"
	"time"

	"veil/directory/gossip"
	"veil/onion"
	"veil/relay/link"
)

const (
	// drainTick is how often a drain looks at what is left.
	drainTick = 250 * time.Millisecond
	// drainQuiet is how long the relay must have passed no cell on, with
	// no stream open at it, before a drain ends early. A middle relay
	// cannot see the streams it carries, only their cells: a bulk
	// transfer moves cells many times a second, so five quiet seconds
	// mean that what is left is idle circuits (a client keeps its
	// circuits ten minutes for new streams, which this relay now
	// refuses), not a transfer that waiting would let finish. Cells that
	// end here do not count: a client asking for a stream or a directory
	// fetch is refused, and would keep a drain going for nothing.
	drainQuiet = 5 * time.Second
)

// Drain asks a running relay to stop gracefully, as Tor does on its first
// SIGINT or SIGTERM (ShutdownWaitLength): it refuses new circuits
// (DESTROY) and streams (END) with reason HIBERNATING, which clients route
// around at once; closes its OR port; leaves the gossip cluster, so the
// seeds drop it from their next consensus; and lets the circuits and
// streams it carries go on until none is left or shutdown_wait passes.
// Run then returns as it does when its context ends, which ends a drain at
// once (the second signal). Drain returns at once; calling it again, or
// before Run, is harmless.
func (r *Relay) Drain() {
	r.drainOnce.Do(func() { close(r.drainReq) })
}

// draining reports whether Drain was called.
func (r *Relay) draining() bool {
	select {
	case <-r.drainReq:
		return true
	default:
		return false
	}
}

// drain runs a drain asked for by Drain, until it is over or ctx ends.
// Once it returns the relay has left the cluster.
func (r *Relay) drain(ctx context.Context, eng *engine, node *gossip.Node) {
	start := r.now()
	wait := r.pub.config().ShutdownWait.D()
	eng.draining.Store(true)
	circuits, streams := eng.carrying()
	r.log.Info(fmt.Sprintf("draining: %d circuits, %d streams; up to %s", circuits, streams, wait),
		"new_circuits", "refused")
	// New links would only bring CREATEs to refuse; a client that finds
	// the port closed passes the relay over at once.
	r.orLn.Close()
	r.leave(node)
	if wait <= 0 {
		r.log.Info("drained: shutdown_wait is 0; closing now", "circuits", circuits, "streams", streams)
		return
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(drainTick)
	defer tick.Stop()
	moved, quietSince := eng.forwarded.Load(), r.now()
	for {
		select {
		case <-ctx.Done():
			circuits, streams = eng.carrying()
			r.log.Info("drain cut short by a second signal; closing now", "circuits", circuits, "streams", streams,
				"after", r.now().Sub(start).Round(time.Millisecond))
			return
		case <-deadline.C:
			circuits, streams = eng.carrying()
			r.log.Info(fmt.Sprintf("drained: shutdown_wait (%s) is over; closing now", wait), "circuits", circuits, "streams", streams)
			return
		case <-tick.C:
		}
		now := r.now()
		if m := eng.forwarded.Load(); m != moved {
			moved, quietSince = m, now
		}
		circuits, streams = eng.carrying()
		switch {
		case circuits == 0:
			r.log.Info("drained: no circuit left", "after", now.Sub(start).Round(time.Millisecond))
			return
		case streams == 0 && now.Sub(quietSince) >= drainQuiet:
			r.log.Info("drained: no stream left and no cell passing through; closing the idle circuits",
				"circuits", circuits, "after", now.Sub(start).Round(time.Millisecond))
			return
		}
	}
}

// leave says goodbye to the cluster, once, so that the seeds drop the
// relay at once instead of when gossip finds it silent.
func (r *Relay) leave(node *gossip.Node) {
	r.leaveOnce.Do(func() {
		if err := node.Leave(leaveTimeout); err != nil {
			r.log.Warn("leaving the cluster", "err", err)
		}
		node.Close()
	})
}

// carrying counts the circuits at this relay and the streams open at it
// (exit, directory and storage streams).
func (e *engine) carrying() (circuits, streams int) {
	seen := map[*relayCircuit]bool{}
	for _, c := range e.circs.all() {
		if seen[c] {
			continue
		}
		seen[c] = true
		circuits++
		if ex := c.exitStreams(); ex != nil {
			streams += ex.Len()
		}
	}
	return circuits, streams
}

// refuseWhileDraining answers a CREATE on a draining relay with DESTROY
// (HIBERNATING), the reason Tor gives for a relay going away, and frees its
// circuit ID. It reports whether it did.
func (e *engine) refuseWhileDraining(l *link.Link, id uint32) bool {
	if !e.draining.Load() {
		return false
	}
	e.sendDestroy(l, id, onion.DestroyHibernating)
	l.ReleaseCircID(id)
	return true
}
