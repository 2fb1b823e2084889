package gossip

// memberlist's delegates. They run on memberlist's goroutines, the event
// and alive callbacks under its node lock: each does a table update under
// n.mu and non-blocking sends, never a call into memberlist.

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// peer is the table entry of one member other than this node.
type peer struct {
	name  string
	addr  netip.AddrPort
	meta  []byte // its pointer, verified
	info  PointerInfo
	alive bool
	since time.Time // when it last joined alive
	gone  time.Time // when it stopped being alive; zero while alive
	desc  []byte    // verified descriptor for info.Digest; nil until fetched

	// Fetch state for info.Digest.
	fetching bool      // a request is queued or sent
	deadline time.Time // while fetching: when the request counts as failed
	attempts int       // failed attempts in a row
	next     time.Time // while not fetching: earliest next attempt
	gaveUp   bool      // maxFetchAttempts failed; re-armed by a new pointer, a re-join or the backstop

	leaving bool // it announced it is leaving (msgLeaving): its departure is EventLeave
}

// A verdict is a cached VerifyPointer result.
type verdict struct {
	addr netip.AddrPort
	meta []byte
	info PointerInfo
	err  error
}

// callbacks implements memberlist's Delegate, EventDelegate, AliveDelegate
// and MergeDelegate for a Node.
type callbacks struct{ n *Node }

var (
	_ memberlist.Delegate      = (*callbacks)(nil)
	_ memberlist.EventDelegate = (*callbacks)(nil)
	_ memberlist.AliveDelegate = (*callbacks)(nil)
	_ memberlist.MergeDelegate = (*callbacks)(nil)
)

// verify checks name's pointer at addr, with a cache: memberlist calls
// NotifyAlive for every alive message it receives, retransmissions
// included.
func (n *Node) verify(name string, addr netip.AddrPort, meta []byte) (PointerInfo, error) {
	if len(meta) == 0 {
		return PointerInfo{}, fmt.Errorf("gossip: %q has no pointer", name)
	}
	if len(meta) > MaxPointerSize {
		return PointerInfo{}, fmt.Errorf("gossip: pointer of %q is %d bytes: %w", name, len(meta), ErrTooLarge)
	}
	n.mu.Lock()
	v, ok := n.verified[name]
	n.mu.Unlock()
	if ok && v.addr == addr && bytes.Equal(v.meta, meta) {
		return v.info, v.err
	}
	info, err := n.cfg.VerifyPointer(name, addr, meta)
	if err != nil {
		err = fmt.Errorf("gossip: pointer of %q at %s: %w", name, addr, err)
	}
	n.mu.Lock()
	if _, ok := n.verified[name]; !ok && len(n.verified) >= MaxMembers {
		for k := range n.verified { // it is only a cache: drop any entry
			delete(n.verified, k)
			break
		}
	}
	n.verified[name] = verdict{addr: addr, meta: slices.Clone(meta), info: info, err: err}
	n.mu.Unlock()
	return info, err
}

// checkSeq refuses a pointer that rolls back or forks the sequence of the
// one held for the same identity.
func checkSeq(held, got PointerInfo) error {
	if held.Key != got.Key {
		return nil
	}
	if got.Seq < held.Seq {
		return fmt.Errorf("gossip: pointer sequence %d below %d already seen (replay)", got.Seq, held.Seq)
	}
	if got.Seq == held.Seq && got.Digest != held.Digest {
		return fmt.Errorf("gossip: two pointers with sequence %d name different descriptors", got.Seq)
	}
	return nil
}

// NotifyAlive admits a node only if its pointer verifies and does not roll
// back the sequence held for it (memberlist AliveDelegate). It runs for
// gossip and push/pull alike, so a node refused here is never listed.
func (c *callbacks) NotifyAlive(nd *memberlist.Node) error {
	n := c.n
	if len(nd.Name) == 0 || len(nd.Name) > MaxNameSize {
		return fmt.Errorf("gossip: node name of %d bytes", len(nd.Name))
	}
	addr, ok := nodeAddr(nd)
	if !ok {
		return fmt.Errorf("gossip: %q has no usable address", nd.Name)
	}
	info, err := n.verify(nd.Name, addr, nd.Meta)
	if err != nil {
		return err
	}
	if nd.Name == n.name {
		// A stale alive message about this node: memberlist refutes it.
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[nd.Name]
	if p == nil {
		return n.admitLocked(addr)
	}
	return checkSeq(p.info, info)
}

// admitLocked makes room for a new member at addr, or says why there is
// none: the table holds at most MaxMembers, and at most MaxMembersPerAddr
// at one address. Room is made by forgetting members that are not alive,
// the longest gone first; an alive member is never pushed out by a
// newcomer, so a flood from one host is refused rather than displacing
// anyone.
func (n *Node) admitLocked(addr netip.AddrPort) error {
	if !(n.addr.Addr().IsLoopback() && addr.Addr().IsLoopback()) {
		key := hostOf(addr.Addr())
		var same []*peer
		for _, p := range n.peers {
			if hostOf(p.addr.Addr()) == key {
				same = append(same, p)
			}
		}
		if len(same) >= MaxMembersPerAddr {
			victim := longestGone(same)
			if victim == nil {
				return fmt.Errorf("gossip: %d members at %s already", len(same), key)
			}
			delete(n.peers, victim.name)
		}
	}
	if len(n.peers) >= MaxMembers && !n.evictLocked() {
		return errors.New("gossip: member table full")
	}
	return nil
}

// hostOf is what MaxMembersPerAddr counts by: an IPv4 address, or an
// IPv6 /64.
func hostOf(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// longestGone returns the member of ps that has not been alive for the
// longest, or nil if all are alive.
func longestGone(ps []*peer) *peer {
	var victim *peer
	for _, p := range ps {
		if !p.alive && (victim == nil || p.gone.Before(victim.gone)) {
			victim = p
		}
	}
	return victim
}

// evictLocked forgets the member that has been gone longest, if any.
func (n *Node) evictLocked() bool {
	var victim *peer
	for _, p := range n.peers {
		if !p.alive && (victim == nil || p.gone.Before(victim.gone)) {
			victim = p
		}
	}
	if victim == nil {
		return false
	}
	delete(n.peers, victim.name)
	return true
}

// NotifyMerge is called with the node list of a cluster being joined
// (memberlist MergeDelegate). It refuses only lists over MaxMembers: each
// alive node in the list still passes NotifyAlive one by one, so an
// unverifiable entry is filtered out there. Refusing the whole merge for
// one bad entry would let a single stale or malformed node in a seed's
// table cut every newcomer off from the network.
func (c *callbacks) NotifyMerge(peers []*memberlist.Node) error {
	if len(peers) > MaxMembers {
		return fmt.Errorf("gossip: merge of %d nodes, limit %d", len(peers), MaxMembers)
	}
	return nil
}

// NotifyJoin records a member that became alive (memberlist EventDelegate).
// It also fires for this node inside memberlist.Create: ignored.
func (c *callbacks) NotifyJoin(nd *memberlist.Node) { c.n.alive(nd, EventJoin) }

// NotifyUpdate records a member's new pointer.
func (c *callbacks) NotifyUpdate(nd *memberlist.Node) { c.n.alive(nd, EventUpdate) }

func (n *Node) alive(nd *memberlist.Node, typ EventType) {
	if nd.Name == n.name {
		return
	}
	addr, ok := nodeAddr(nd)
	if !ok {
		return
	}
	info, err := n.verify(nd.Name, addr, nd.Meta) // cached by NotifyAlive
	if err != nil {
		n.log.Warn("gossip: memberlist admitted an unverified node", "member", nd.Name, "err", err)
		return
	}
	now := time.Now()
	n.mu.Lock()
	p := n.peers[nd.Name]
	if p == nil {
		p = &peer{name: nd.Name}
		n.peers[nd.Name] = p
	}
	wasAlive := p.alive
	changed := n.setPointerLocked(p, addr, nd.Meta, info, now)
	if !p.alive {
		p.alive, p.since, p.gone, p.leaving = true, now, time.Time{}, false
	}
	if p.desc == nil && p.gaveUp && !wasAlive {
		p.gaveUp, p.attempts, p.next = false, 0, now // a re-join re-arms the fetch
	}
	n.mu.Unlock()
	if !wasAlive {
		typ = EventJoin
	} else if !changed {
		return
	}
	n.emit(Event{Type: typ, Name: nd.Name})
	wake(n.kick)
	wake(n.joined)
}

// setPointerLocked records p's pointer and address. A pointer naming
// anything new drops the old descriptor and schedules a fetch. It reports
// whether the pointer changed.
func (n *Node) setPointerLocked(p *peer, addr netip.AddrPort, meta []byte, info PointerInfo, now time.Time) bool {
	p.addr = addr
	if p.meta != nil && p.info == info {
		return false
	}
	p.meta = slices.Clone(meta)
	p.info = info
	p.desc = nil
	p.fetching, p.attempts, p.next, p.gaveUp = false, 0, now, false
	return true
}

// NotifyLeave records a member that left or was declared dead. memberlist
// does not say which (the Node it passes never has State set), so a member
// counts as having left if it sent a leaving notice first (Node.Leave).
func (c *callbacks) NotifyLeave(nd *memberlist.Node) {
	n := c.n
	if nd.Name == n.name {
		return
	}
	typ := EventDead
	n.mu.Lock()
	p := n.peers[nd.Name]
	if p != nil && p.alive {
		// An in-flight fetch is kept: its answer is still good if the
		// member was only briefly declared dead.
		p.alive, p.gone = false, time.Now()
		if p.leaving {
			typ = EventLeave
		}
	}
	n.mu.Unlock()
	if p == nil {
		return
	}
	n.emit(Event{Type: typ, Name: nd.Name})
}

// NodeMeta returns this node's pointer as its memberlist metadata.
func (c *callbacks) NodeMeta(limit int) []byte {
	n := c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.self.pointer) > limit {
		// Start and UpdateSelf refuse such pointers; memberlist would panic.
		return nil
	}
	return slices.Clone(n.self.pointer)
}

// NotifyMsg receives fetch messages. It runs on memberlist's packet or
// stream goroutine, so it only parses (the result owns its bytes: b is
// reused) and queues without blocking; floods are dropped.
func (c *callbacks) NotifyMsg(b []byte) {
	n := c.n
	m, err := parseMessage(b)
	if err != nil {
		n.log.Debug("gossip: bad fetch message", "err", err)
		return
	}
	q := n.responses
	switch m.Type {
	case msgRequest:
		q = n.requests
	case msgLeaving:
		// Only a label for the departure; it must name the member's
		// current pointer. It usually comes before memberlist's leave
		// message, but nothing orders the two: the leave message can
		// reach this node first by gossip from a third member or in a
		// push/pull (TCP, handled on another goroutine than this UDP
		// notice). A notice for a member reported EventDead within
		// leavingGrace corrects that report with EventLeave.
		n.mu.Lock()
		late := false
		if p := n.peers[m.Name]; p != nil && p.info.Digest == m.Digest && !p.leaving {
			switch {
			case p.alive:
				p.leaving = true
			case !p.gone.IsZero() && time.Since(p.gone) < n.leavingGrace():
				p.leaving, late = true, true
			}
		}
		n.mu.Unlock()
		if late {
			n.emit(Event{Type: EventLeave, Name: m.Name})
		}
		return
	}
	select {
	case q <- m:
	default:
		n.log.Debug("gossip: fetch queue full, message dropped", "type", m.Type)
	}
}

// GetBroadcasts returns nothing: descriptors never ride in gossip packets.
func (c *callbacks) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState returns the push/pull backstop: (name, pointer) for this node
// and the alive members, shuffled so that a table too large for
// maxStateBytes is covered over successive exchanges.
func (c *callbacks) LocalState(join bool) []byte {
	n := c.n
	n.mu.Lock()
	entries := make([]stateEntry, 0, len(n.peers)+1)
	entries = append(entries, stateEntry{Name: n.name, Pointer: n.self.pointer})
	for _, p := range n.peers {
		if p.alive {
			entries = append(entries, stateEntry{Name: p.name, Pointer: p.meta})
		}
	}
	n.mu.Unlock()
	// The slices are never modified in place, so reading them unlocked is safe.
	rand.Shuffle(len(entries)-1, func(i, j int) { entries[i+1], entries[j+1] = entries[j+1], entries[i+1] })
	return marshalState(entries)
}

// MergeRemoteState takes a remote push/pull backstop state. memberlist has
// already merged the remote node list (and called NotifyAlive/NotifyJoin)
// by now, so this only catches what that missed: a newer verified pointer
// for an alive member is adopted and fetched, and a given-up fetch of a
// pointer the remote also holds is re-armed. At most maxMergeVerifies
// pointers are verified per merge.
func (c *callbacks) MergeRemoteState(buf []byte, join bool) {
	n := c.n
	entries, err := parseState(buf)
	if err != nil {
		n.log.Debug("gossip: bad push/pull state", "err", err)
		return
	}
	verifies, kick := 0, false
	for _, e := range entries {
		if e.Name == n.name {
			continue
		}
		now := time.Now()
		n.mu.Lock()
		p := n.peers[e.Name]
		if p == nil || !p.alive {
			n.mu.Unlock()
			continue
		}
		if bytes.Equal(p.meta, e.Pointer) {
			if p.desc == nil && p.gaveUp {
				p.gaveUp, p.attempts, p.next = false, 0, now
				kick = true
			}
			n.mu.Unlock()
			continue
		}
		addr, held := p.addr, p.info
		n.mu.Unlock()
		if verifies == maxMergeVerifies {
			continue
		}
		verifies++
		info, err := n.verify(e.Name, addr, e.Pointer)
		if err != nil || info.Key != held.Key || info.Seq <= held.Seq {
			continue
		}
		n.mu.Lock()
		adopted := n.peers[e.Name] == p && p.alive && p.info == held
		if adopted {
			n.setPointerLocked(p, addr, e.Pointer, info, now)
		}
		n.mu.Unlock()
		if adopted {
			n.emit(Event{Type: EventUpdate, Name: e.Name})
			kick = true
		}
	}
	if kick {
		wake(n.kick)
	}
}

// leavingGrace is how long after reporting a member EventDead a late
// leaving notice from it still turns that into EventLeave: the notice and
// memberlist's leave message leave the node together, so only scheduling
// and queueing keep them apart.
func (n *Node) leavingGrace() time.Duration { return 2 * n.timing.TCPTimeout }
