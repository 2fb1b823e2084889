package link

import (
	"errors"
	"fmt"

	"veil/onion"
)

// MaxCircuitsPerLink bounds the circuit IDs in use on one link (G9), half of
// them for each end, so a peer that floods CREATE exhausts only its own half.
// 32768 circuits from one peer is far more than a client opens (a pool of
// tens) and room for a busy relay-to-relay link; what they cost in memory is
// capped by the relay as a whole. The table itself stays under a few MB.
const MaxCircuitsPerLink = 65536

const (
	maxCircuitsPerEnd = MaxCircuitsPerLink / 2
	// initiatorBit is set in the circuit IDs the initiator allocates and
	// clear in the responder's (as in Tor).
	initiatorBit = 1 << 31
)

var (
	// ErrTooManyCircuits: an end already has MaxCircuitsPerLink/2 circuit
	// IDs in use on this link.
	ErrTooManyCircuits = errors.New("link: too many circuits on the link")
	// ErrCircIDInUse: the peer opened a circuit whose ID is in use. It wraps
	// onion.ErrProtocol.
	ErrCircIDInUse = fmt.Errorf("%w: circuit id in use", onion.ErrProtocol)
	// ErrCircIDWrongHalf: the peer opened a circuit with an ID from our half
	// of the space (or 0). It wraps onion.ErrProtocol.
	ErrCircIDWrongHalf = fmt.Errorf("%w: circuit id from the wrong half", onion.ErrProtocol)
)

// PeerMayCreate reports whether the peer may open a circuit with id: it is
// not 0 and lies in the peer's half of the ID space. A CREATE that fails this
// is a protocol error; close the link.
func (l *Link) PeerMayCreate(id uint32) bool {
	peerIsInitiator := !l.initiator
	return id != 0 && (id&initiatorBit != 0) == peerIsInitiator
}

// NewCircID allocates an unused circuit ID from this end's half and marks it
// in use until ReleaseCircID. It fails with ErrTooManyCircuits when this end
// has MaxCircuitsPerLink/2 IDs in use, and ErrClosed once the link closes.
func (l *Link) NewCircID() (uint32, error) {
	if l.isClosing.Load() {
		return 0, ErrClosed
	}
	var half uint32
	if l.initiator {
		half = initiatorBit
	}
	l.circMu.Lock()
	defer l.circMu.Unlock()
	if l.ownCircs >= maxCircuitsPerEnd {
		return 0, ErrTooManyCircuits
	}
	// At most maxCircuitsPerEnd IDs of the 2^31-1 in the half are taken, so
	// this ends within maxCircuitsPerEnd+1 tries.
	for {
		id := half | l.nextCirc
		l.nextCirc++
		if l.nextCirc == initiatorBit {
			l.nextCirc = 1
		}
		if _, used := l.circs[id]; !used {
			l.circs[id] = &circQueue{id: id}
			l.ownCircs++
			l.circChanges++
			return id, nil
		}
	}
}

// AcceptCircID marks id, from a CREATE the peer sent, in use until
// ReleaseCircID. Its errors (ErrCircIDWrongHalf, ErrCircIDInUse,
// ErrTooManyCircuits) mean the peer broke the protocol or a limit: refuse
// the circuit, and for the first two close the link.
func (l *Link) AcceptCircID(id uint32) error {
	if !l.PeerMayCreate(id) {
		return fmt.Errorf("%w: %#08x", ErrCircIDWrongHalf, id)
	}
	l.circMu.Lock()
	defer l.circMu.Unlock()
	if _, used := l.circs[id]; used {
		return fmt.Errorf("%w: %#08x", ErrCircIDInUse, id)
	}
	if l.peerCircs >= maxCircuitsPerEnd {
		return ErrTooManyCircuits
	}
	l.circs[id] = &circQueue{id: id}
	l.peerCircs++
	l.circChanges++
	return nil
}

// ReleaseCircID frees id, allocated by NewCircID or accepted by
// AcceptCircID, when its circuit is gone, and drops the circuit's cells
// that wait for room in the send queue (Enqueue). Releasing an ID not in
// use does nothing.
func (l *Link) ReleaseCircID(id uint32) {
	l.circMu.Lock()
	q, used := l.circs[id]
	if !used {
		l.circMu.Unlock()
		return
	}
	delete(l.circs, id)
	if l.PeerMayCreate(id) {
		l.peerCircs--
	} else {
		l.ownCircs--
	}
	l.circChanges++
	l.circMu.Unlock()
	// Not under circMu: waitMu is never taken with it held.
	l.releaseQueue(q)
}

// Circuits returns how many circuit IDs are in use on the link, both ends.
func (l *Link) Circuits() int {
	l.circMu.Lock()
	defer l.circMu.Unlock()
	return len(l.circs)
}
