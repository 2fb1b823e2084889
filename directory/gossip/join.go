package gossip

// Joining: one seed at start (the first of them, in random order, that
// answers), with capped, jittered backoff while none answers; then, every Timing.RejoinInterval, seeds that are not alive
// and, at most one answering per push/pull period, members that are not
// alive, since memberlist never re-contacts nodes that left or were
// reaped (its issues #140, #222, #311).

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"
)

func (n *Node) joinLoop() {
	defer n.wg.Done()
	seeds := n.seeds()
	if len(seeds) > 0 {
		delay, limit := n.timing.joinBackoff()
		for attempt := 1; !n.left.Load(); attempt++ {
			seed, err := n.joinOne(seeds)
			if err == nil {
				n.log.Info("gossip: joined", "seed", seed, "attempts", attempt)
				break
			}
			if attempt == 1 {
				n.log.Warn("gossip: no seed answers, retrying in the background", "seeds", seeds, "err", err)
			} else {
				n.log.Debug("gossip: join failed", "attempt", attempt, "err", err)
			}
			if !n.sleep(jitter(delay)) {
				return
			}
			delay = min(2*delay, limit)
		}
	}
	t := time.NewTicker(n.timing.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			n.rejoin(seeds)
		}
	}
}

// joinOne joins the seeds one at a time, in random order, until one
// answers, and returns it. A join is a full state exchange, costly for a
// seed with thousands of members (about 4.5 MB both ways with 7,000), and
// one is enough: the other seeds learn of this node by gossip, and the
// re-join loop joins any seed still not alive later.
func (n *Node) joinOne(seeds []string) (string, error) {
	order := slices.Clone(seeds)
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	var errs []error
	for _, s := range order {
		if n.ctx.Err() != nil {
			return "", n.ctx.Err()
		}
		if _, err := n.ml.Join([]string{s}); err != nil {
			errs = append(errs, err)
			continue
		}
		return s, nil
	}
	return "", joinErrors(errs)
}

// joinErrors is the failures of one join, on one line. memberlist's
// errors (a multierror, "1 error occurred:\n\t* ...") and errors.Join
// put each failure on a line of its own, which a log line does not want.
type joinErrors []error

func (e joinErrors) Error() string {
	var parts []string
	for _, err := range e {
		parts = append(parts, flatErrors(err)...)
	}
	return strings.Join(parts, "; ")
}

func (e joinErrors) Unwrap() []error { return e }

// flatErrors is the text of err, or of each error a multierror wraps.
func flatErrors(err error) []string {
	m, ok := err.(interface{ WrappedErrors() []error })
	if !ok {
		return []string{err.Error()}
	}
	var out []string
	for _, w := range m.WrappedErrors() {
		out = append(out, flatErrors(w)...)
	}
	return out
}

// seeds returns Config.Join without this node's own address.
func (n *Node) seeds() []string {
	var out []string
	for _, s := range n.cfg.Join {
		if ap, err := netip.ParseAddrPort(s); err == nil && ap == n.addr {
			continue
		}
		out = append(out, s)
	}
	return out
}

// jitter returns a duration in [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// rejoin tries up to maxRejoinPerRound addresses, chosen at random among
// seeds that are not alive (a seed given by host name counts as not alive
// while no member is) and, at most once per push/pull period, members:
// those that memberlist has stopped contacting (not alive for longer than
// GossipToTheDeadTime) and alive ones whose descriptor fetches failed
// twice or more. Members gone for longer than forgetAfter are forgotten.
//
// A re-join that answers is a full state exchange, as costly as a
// push/pull; so once one with a member succeeds, no other member is
// re-joined until a push/pull period has passed (lastMemberRejoin). A
// member that keeps failing our fetches (a relay with a bad clock, or a
// hostile one) would otherwise cost every node an exchange each
// RejoinInterval, 150 KB/s at 7,000 members. Dials that fail cost
// nothing and use no turn.
func (n *Node) rejoin(seeds []string) {
	if n.left.Load() {
		return
	}
	now := time.Now()
	members := now.Sub(n.lastMemberRejoin) >= n.timing.pushPullPeriod(n.ml.NumMembers())
	alive := make(map[netip.AddrPort]bool)
	var cands []rejoinCand
	n.mu.Lock()
	for name, p := range n.peers {
		switch {
		case p.alive:
			alive[p.addr] = true
			if members && p.desc == nil && p.attempts >= 2 {
				// It does not answer our fetches: it may have refused our
				// alive message (memberlist refuses a known name at a new
				// address until the old one is declared dead), and a
				// push/pull re-sends it.
				cands = append(cands, rejoinCand{addr: p.addr.String(), member: true})
			}
		case now.Sub(p.gone) > forgetAfter:
			delete(n.peers, name)
			delete(n.verified, name)
		case members && now.Sub(p.gone) > n.timing.GossipToTheDeadTime:
			// Until then memberlist still gossips to it, and a node
			// wrongly declared dead refutes by itself; re-joining
			// sooner only adds push/pulls to a node under load.
			cands = append(cands, rejoinCand{addr: p.addr.String(), member: true})
		}
	}
	n.mu.Unlock()
	for _, s := range seeds {
		ap, err := netip.ParseAddrPort(s)
		if (err == nil && !alive[ap]) || (err != nil && len(alive) == 0) {
			cands = append(cands, rejoinCand{addr: s})
		}
	}
	rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	if len(cands) > maxRejoinPerRound {
		cands = cands[:maxRejoinPerRound]
	}
	for _, c := range cands {
		if n.ctx.Err() != nil || n.left.Load() {
			return
		}
		if c.member && !members {
			continue // a member answered earlier in this round
		}
		if _, err := n.ml.Join([]string{c.addr}); err != nil {
			n.log.Debug("gossip: re-join failed", "addr", c.addr, "err", err)
			continue
		}
		n.log.Debug("gossip: re-joined", "addr", c.addr)
		if c.member {
			n.lastMemberRejoin, members = time.Now(), false
		}
	}
}

type rejoinCand struct {
	addr   string
	member bool // a member's address, not a seed's
}
