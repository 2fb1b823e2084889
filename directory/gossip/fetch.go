package gossip

// Descriptor fetch, requester side (SPEC.md §2). The scheduler goroutine
// owns the timing: it hands due fetches to the workers through a bounded
// channel, fails those unanswered by their deadline and handles responses.
// The workers only send requests, so one unreachable member holds up at
// most one of them for Timing.TCPTimeout. A first request goes by UDP,
// retries by TCP; answers always come by TCP.

import (
	"net/netip"
	"time"
)

type fetchJob struct {
	name    string
	addr    netip.AddrPort
	digest  [DigestSize]byte
	attempt int // failed attempts before this one
}

// schedulerIdle is the longest the scheduler sleeps with nothing due.
const schedulerIdle = time.Minute

func (n *Node) fetchLoop() {
	defer n.wg.Done()
	timer := time.NewTimer(schedulerIdle)
	defer timer.Stop()
	for {
		timer.Reset(n.schedule(time.Now()))
		select {
		case <-n.ctx.Done():
			return
		case <-n.kick:
		case <-timer.C:
		case m := <-n.responses:
			n.handleResponse(m)
		}
	}
}

// fetchTimeout is how long a queued request may go unanswered: the
// worker's dial and send (by TCP on retries), then the owner's dial and
// send back. A first request goes by UDP and may be lost, so it is given
// up sooner.
func (n *Node) fetchTimeout(attempt int) time.Duration {
	if attempt == 0 {
		return n.timing.TCPTimeout
	}
	return 2 * n.timing.TCPTimeout
}

// schedule queues every due fetch, fails the overdue ones and returns how
// long to sleep until something is due.
func (n *Node) schedule(now time.Time) time.Duration {
	next := now.Add(schedulerIdle)
	var gaveUp []string
	n.mu.Lock()
	for _, p := range n.peers {
		if !p.alive || p.desc != nil || p.gaveUp {
			continue
		}
		if p.fetching {
			if now.Before(p.deadline) {
				next = earlier(next, p.deadline)
				continue
			}
			if n.failLocked(p, now) {
				gaveUp = append(gaveUp, p.name)
				continue
			}
		}
		if now.Before(p.next) {
			next = earlier(next, p.next)
			continue
		}
		select {
		case n.jobs <- fetchJob{name: p.name, addr: p.addr, digest: p.info.Digest, attempt: p.attempts}:
			p.fetching, p.deadline = true, now.Add(n.fetchTimeout(p.attempts))
			next = earlier(next, p.deadline)
		default:
			// Workers busy: each finished job wakes the scheduler.
		}
	}
	n.mu.Unlock()
	for _, name := range gaveUp {
		n.log.Warn("gossip: descriptor fetch given up", "member", name, "attempts", maxFetchAttempts)
	}
	return max(next.Sub(now), 0)
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// failLocked counts a failed fetch of p and schedules the retry; it
// reports whether this was the last attempt.
func (n *Node) failLocked(p *peer, now time.Time) bool {
	p.fetching = false
	p.attempts++
	if p.attempts >= maxFetchAttempts {
		p.gaveUp = true
		return true
	}
	p.next = now.Add(n.timing.fetchBackoff(p.attempts))
	return false
}

func (n *Node) fetchWorker() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case j := <-n.jobs:
			if n.ctx.Err() != nil {
				return
			}
			req := message{Type: msgRequest, Digest: j.digest, Name: n.name}
			b, err := req.marshal() // cannot fail: Start checked the name
			if err == nil {
				// The first request goes as one UDP packet (at most
				// requestFixedSize+MaxNameSize bytes): it halves the TCP
				// connections a join storm costs. Retries go by TCP, in
				// case the packet was lost.
				if j.attempt == 0 {
					err = n.ml.SendBestEffort(mlNode(j.name, j.addr), b)
				} else {
					err = n.ml.SendReliable(mlNode(j.name, j.addr), b)
				}
			}
			if err != nil {
				n.fetchFailed(j, err)
			}
			wake(n.kick)
		}
	}
}

// fetchFailed counts a request that could not be sent.
func (n *Node) fetchFailed(j fetchJob, err error) {
	n.mu.Lock()
	p := n.peers[j.name]
	last := false
	if p != nil && p.fetching && p.info.Digest == j.digest {
		last = n.failLocked(p, time.Now())
	}
	n.mu.Unlock()
	n.log.Debug("gossip: fetch request failed", "member", j.name, "err", err)
	if last {
		n.log.Warn("gossip: descriptor fetch given up", "member", j.name, "attempts", maxFetchAttempts, "err", err)
	}
}

// handleResponse matches a response to the member whose pointer names its
// digest, verifies the descriptor and keeps it. Unsolicited responses are
// dropped.
func (n *Node) handleResponse(m message) {
	now := time.Now()
	n.mu.Lock()
	var p *peer
	for _, q := range n.peers {
		if q.desc == nil && q.info.Digest == m.Digest {
			p = q
			break
		}
	}
	if p == nil {
		n.mu.Unlock()
		n.log.Debug("gossip: unsolicited fetch response dropped", "type", m.Type)
		return
	}
	name, info := p.name, p.info
	if m.Type == msgNotFound {
		last := p.fetching && n.failLocked(p, now)
		n.mu.Unlock()
		n.log.Debug("gossip: member no longer has its descriptor", "member", name)
		if last {
			n.log.Warn("gossip: descriptor fetch given up", "member", name, "attempts", maxFetchAttempts)
		}
		return
	}
	n.mu.Unlock()

	err := n.cfg.VerifyDescriptor(info, m.Descriptor)

	n.mu.Lock()
	if n.peers[name] != p || p.info != info || p.desc != nil {
		n.mu.Unlock() // changed meanwhile
		return
	}
	if err != nil {
		last := n.failLocked(p, now)
		n.mu.Unlock()
		n.log.Warn("gossip: descriptor refused", "member", name, "err", err, "given_up", last)
		return
	}
	p.desc, p.fetching, p.attempts = m.Descriptor, false, 0
	n.mu.Unlock()
	n.log.Debug("gossip: descriptor stored", "member", name, "seq", info.Seq)
	n.emit(Event{Type: EventDescriptor, Name: name})
}
