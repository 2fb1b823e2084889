package client

import (
	"errors"
	"time"

	"veil/directory"
	"veil/onion"
	"veil/onion/keys"
	"veil/relay/path"
)

// A relay that drains (SIGTERM) refuses new circuits with DESTROY and new
// streams with END, both with reason HIBERNATING, while it carries the
// ones it has to their end (relay.Relay.Drain). The client believes it at
// once, as it would a closed port: it passes the relay over for new
// circuits (path.Selector.Unreachable) and takes no new stream on a
// circuit through it (usable), without tearing down the streams the relay
// still carries. Only the relay itself can say so: a DESTROY's reason
// reaches the client only from its guard, every hop further on being
// reported as DESTROYED (onion/SPEC.md §2.4), and an END counts only from
// the hop the stream ends at. A guard that says it is leaving to fail
// selected circuits loses its client for path.UnreachableFor, and the
// failed extend still counts against it (blameGuard).

// noteLeaving records that relay id said it is going away.
func (cl *Client) noteLeaving(id keys.NodeID, nickname string) {
	cl.opts.Paths.Unreachable(id)
	cl.mu.Lock()
	_, known := cl.leaving[id]
	cl.leaving[id] = time.Now().Add(path.UnreachableFor)
	cl.mu.Unlock()
	if !known {
		cl.log.Info("a relay is shutting down; routing around it", "relay", nickname)
	}
}

// leavingLocked reports whether relay id said lately that it is going away.
func (cl *Client) leavingLocked(id keys.NodeID, now time.Time) bool {
	until, ok := cl.leaving[id]
	if ok && !now.Before(until) {
		delete(cl.leaving, id)
		return false
	}
	return ok
}

// guardLeaving notes the guard of hops as leaving when err is its DESTROY
// with reason HIBERNATING.
func (cl *Client) guardLeaving(hops []directory.Entry, err error) {
	var d *DestroyedError
	if errors.As(err, &d) && d.Reason == onion.DestroyHibernating {
		cl.noteLeaving(hops[0].Descriptor.NodeID(), hops[0].Descriptor.Nickname)
	}
}

// exitLeaving notes the last hop of c as leaving when err is its END with
// reason HIBERNATING.
func (cl *Client) exitLeaving(c *Circuit, err error) {
	var end *EndError
	if errors.As(err, &end) && end.Reason == onion.EndHibernating {
		last := c.hops[len(c.hops)-1].Descriptor
		cl.noteLeaving(last.NodeID(), last.Nickname)
	}
}
