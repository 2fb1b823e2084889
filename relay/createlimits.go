package relay

import (
	"time"

	"veil/onion"
	"veil/onion/keys"
	"veil/relay/internal/dos"
	"veil/relay/link"
)

// unusedTimeout is how long a circuit a client created may sit without
// asking this relay for anything: no EXTEND, no stream. A client's first
// relay cell after CREATED is its EXTEND, within a build's 20 s; a circuit
// that has had none for a minute only holds a place in the table (an idle
// circuit that was built, by contrast, has a next hop and stays, for the
// client to reuse as Tor's do). Circuits a relay created are left alone:
// the exit of a client's spare circuit hears nothing until the client
// uses it, minutes later.
const unusedTimeout = time.Minute

// createLimits is what keeps one peer from locking the relay out of
// circuits (issue 13): per-peer limits on CREATE and the reaping of
// circuits never used.
type createLimits struct {
	peers *dos.Table
	// unusedAfter is unusedTimeout; tests shorten it before Run.
	unusedAfter time.Duration
}

func newCreateLimits(maxCircuits int) createLimits {
	return createLimits{peers: dos.New(dos.DefaultLimits(maxCircuits)), unusedAfter: unusedTimeout}
}

// refusal is why a CREATE was refused for a limit, as the metrics count it.
type refusal int

const (
	refusedRelayFull refusal = iota // the relay-wide cap, 2×max_circuits hops
	refusedPeerShare                // the peer holds its share (dos.OverShare)
	refusedPeerRate                 // the peer's CREATE rate (dos.OverRate)
	numRefusals
)

var refusalNames = [numRefusals]string{"relay", "peer_share", "peer_rate"}

// admitCreate asks the per-peer limits about a CREATE on l whose circuit
// ID is accepted. Admitted, it returns the reservation to hold the circuit
// in and whether the peer is a client (not a relay this relay knows);
// refused, it has answered DESTROY(RESOURCELIMIT) to that peer alone and
// released the ID.
func (e *engine) admitCreate(l *link.Link, id uint32) (res dos.Reservation, fromClient, ok bool) {
	relay := false
	if peer, authenticated := l.Peer(); authenticated {
		relay = e.r.isKnownRelay(peer)
	}
	res, v, report := e.r.creates.peers.Admit(dos.KeyOf(l.RemoteAddr(), relay), e.r.now())
	if v == dos.Admitted {
		return res, !relay, true
	}
	why := refusedPeerShare
	if v == dos.OverRate {
		why = refusedPeerRate
	}
	if report {
		// Once per burst of refusals from one peer; no address, which a
		// relay's log must not list. The counts are in the metrics.
		kind := "client"
		if relay {
			kind = "relay"
		}
		e.log.Info("refusing circuits to a peer over its limit", "peer", kind, "limit", v.String())
	}
	e.refuseCreate(l, id, why)
	return res, false, false
}

// refuseCreate answers a CREATE with DESTROY(RESOURCELIMIT) and frees its
// circuit ID.
func (e *engine) refuseCreate(l *link.Link, id uint32, why refusal) {
	e.stats.refusedCreates[why].Add(1)
	e.sendDestroy(l, id, onion.DestroyResourceLimit)
	l.ReleaseCircID(id)
}

// isKnownRelay reports whether id is a relay in this relay's view. Unlike
// knownRelay it does not rebuild the view sooner for a miss, so a peer
// with a fresh certificate on every CREATE cannot make the relay re-read
// gossip more than once every viewTTL.
func (r *Relay) isKnownRelay(id keys.NodeID) bool {
	r.viewMu.Lock()
	_, known := r.view[id]
	fresh := r.now().Sub(r.viewTime) <= viewTTL
	r.viewMu.Unlock()
	if known || fresh {
		return known
	}
	_, known = r.knownRelay(id)
	return known
}

// Closed reports whether the circuit is destroyed (dos.Circuit).
func (circ *relayCircuit) Closed() bool {
	circ.mu.Lock()
	defer circ.mu.Unlock()
	return circ.dead
}

// unused reports whether the circuit has never asked this relay for
// anything: no EXTEND started or done, no stream opened.
func (circ *relayCircuit) unused() bool {
	circ.mu.Lock()
	defer circ.mu.Unlock()
	return !circ.dead && !circ.extending && circ.next.l == nil && circ.pending.l == nil && circ.exit == nil
}

// reapUnused destroys, until the relay stops, every circuit a client
// created that has been unused for unusedAfter, and keeps the per-peer
// table small. It looks every quarter of that, so a circuit goes between
// 1 and 1.25 times unusedAfter after its CREATE.
func (e *engine) reapUnused() {
	after := e.r.creates.unusedAfter
	t := time.NewTicker(after / 4)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		if n := e.reapUnusedOnce(after); n > 0 {
			e.log.Debug("destroyed circuits that were never used", "circuits", n, "after", after)
		}
		e.r.creates.peers.Sweep(e.r.now())
	}
}

// reapUnusedOnce destroys the client circuits unused for after, with
// reason TIMEOUT, and returns how many.
func (e *engine) reapUnusedOnce(after time.Duration) int {
	now := e.r.now()
	n := 0
	for _, circ := range e.circs.all() {
		// A circuit with two hops here is listed twice, but only a
		// circuit with none beyond this relay is unused, and the second
		// look finds it dead.
		if !circ.fromClient || now.Sub(circ.opened) < after || !circ.unused() {
			continue
		}
		e.destroy(circ, hop{}, onion.DestroyTimeout)
		n++
	}
	return n
}
