package gossip

// Descriptor fetch, owner side (SPEC.md §2). The server goroutine matches
// requests to members and queues answers for replyWorkers goroutines, which
// send them (SendReliable dials, so one unreachable requester holds up one
// worker for at most Timing.TCPTimeout). A request names the requester,
// since memberlist user messages carry no sender; the answer goes only to
// an admitted, alive member of that name, at the address memberlist knows
// for it, never to an address taken from the request. A request may arrive
// before the requester is admitted here (both sides learn of each other in
// the same push/pull), so it is parked, bounded in number and time, until
// the requester joins or gives up on the request (fetchTimeout).

import (
	"net/netip"
	"time"
)

type parkedRequest struct {
	m     message
	until time.Time
}

// A reply is an answer ready to send.
type reply struct {
	to   string
	addr netip.AddrPort
	msg  []byte
}

func (n *Node) serveLoop() {
	defer n.wg.Done()
	var parked []parkedRequest
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case m := <-n.requests:
			if n.serve(m) {
				continue
			}
			if len(parked) == maxParkedRequests {
				n.log.Debug("gossip: too many requests from unknown nodes, dropped", "from", m.Name)
				continue
			}
			parked = append(parked, parkedRequest{m: m, until: time.Now().Add(n.fetchTimeout(1))})
		case <-n.joined:
		case <-timer.C:
		}
		now := time.Now()
		keep := parked[:0]
		wait := time.Hour
		for _, r := range parked {
			if n.ctx.Err() != nil {
				return
			}
			switch {
			case n.serve(r.m):
			case now.Before(r.until):
				keep = append(keep, r)
				wait = min(wait, r.until.Sub(now))
			default:
				n.log.Debug("gossip: request from a node that never joined, dropped", "from", r.m.Name)
			}
		}
		clear(parked[len(keep):])
		parked = keep
		timer.Reset(wait)
	}
}

// replyWorker sends answers. Several run, so that a newcomer that every
// member asks at once, or one unreachable requester, does not hold up the
// rest.
func (n *Node) replyWorker() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case r := <-n.replies:
			if n.ctx.Err() != nil {
				return
			}
			if err := n.ml.SendReliable(mlNode(r.to, r.addr), r.msg); err != nil {
				n.log.Debug("gossip: answer to fetch failed", "member", r.to, "err", err)
			}
		}
	}
}

// serve queues an answer to m if its requester is an alive member; it
// reports whether the requester is one (a full reply queue drops the
// answer: the requester retries).
func (n *Node) serve(m message) bool {
	n.mu.Lock()
	p := n.peers[m.Name]
	if p == nil || !p.alive {
		n.mu.Unlock()
		return false
	}
	to := p.addr
	resp := message{Type: msgNotFound, Digest: m.Digest}
	if m.Digest == n.self.info.Digest {
		resp = message{Type: msgResponse, Digest: m.Digest, Descriptor: n.self.descriptor}
	}
	n.mu.Unlock()
	b, err := resp.marshal() // cannot fail: Start and UpdateSelf check the descriptor
	if err != nil {
		return true
	}
	select {
	case n.replies <- reply{to: m.Name, addr: to, msg: b}:
	default:
		n.log.Debug("gossip: reply queue full, request dropped", "member", m.Name)
	}
	return true
}
