package relay

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"veil/conf"
	"veil/directory"
	"veil/directory/gossip"
	"veil/directory/member"
	"veil/onion"
	"veil/relay/internal/accounting"
	"veil/relay/link"
)

const (
	// accountTick is how often the relay adds what its links moved to
	// the period's count. A relay at 100 MB/s overshoots accounting_max
	// by at most this much traffic, a small part of any sensible quota.
	accountTick = time.Second
	// accountSave is how often the count is written to data_dir: a
	// crash forgets at most this long of traffic.
	accountSave = time.Minute
)

// hibernation is accounting_max at work (relay/internal/accounting): once
// a period has spent it, the relay hibernates, as Tor does: it refuses
// new circuits and streams with HIBERNATING, leaves the gossip cluster so
// that the seeds drop it from the consensus, and carries the circuits it
// has until they end. It wakes, joining again, when the next period
// begins.
type hibernation struct {
	acct *accounting.Accountant // nil: accounting is off
	// asleep is set while the relay hibernates.
	asleep atomic.Bool
	// sleep and wake carry the account loop's decisions to the
	// membership loop (one pending each).
	sleep, wake chan struct{}
	// ahead, a test hook, moves the accounting clock (and only it)
	// forward by this many nanoseconds, to reach the next period.
	ahead atomic.Int64
}

// newHibernation opens the accounting state in cfg's data_dir when
// accounting_max is set.
func newHibernation(cfg *conf.Relay, now time.Time) (*hibernation, error) {
	h := &hibernation{sleep: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
	if cfg.AccountingMax == 0 {
		return h, nil
	}
	acct, err := accounting.Open(cfg.DataDir, uint64(cfg.AccountingMax), cfg.AccountingRule, cfg.AccountingStart, now)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	h.acct = acct
	return h, nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// account counts what the links move against accounting_max until ctx
// ends, and decides when the relay hibernates and wakes. It saves the
// count every accountSave, on each decision and when it stops.
func (r *Relay) account(ctx context.Context) {
	h := r.hib
	if h.acct == nil {
		return
	}
	tick := time.NewTicker(accountTick)
	defer tick.Stop()
	lastIn, lastOut := r.limiter.Counted()
	lastSave := r.now()
	save := func() {
		if err := h.acct.Save(); err != nil {
			r.log.Error("saving the accounting state", "err", err)
		}
		lastSave = r.now()
	}
	for {
		in, out := r.limiter.Counted()
		h.acct.Add(in-lastIn, out-lastOut)
		lastIn, lastOut = in, out
		now := r.now()
		if h.acct.Roll(now.Add(time.Duration(h.ahead.Load()))) {
			if h.asleep.Load() {
				h.asleep.Store(false)
				r.log.Info("waking: a new accounting period has begun; joining the network",
					"period_ends", h.acct.NextPeriod().Format(time.RFC3339))
				signal(h.wake)
			}
			save()
		}
		if !h.asleep.Load() && h.acct.Exhausted() {
			s := h.acct.State()
			h.asleep.Store(true)
			r.log.Info(fmt.Sprintf("hibernating: accounting_max (%s, rule %q) is spent; leaving the network until the next period", r.cfg.AccountingMax, r.cfg.AccountingRule),
				"mb_in", s.In>>20, "mb_out", s.Out>>20, "wakes", h.acct.NextPeriod().Format(time.RFC3339))
			signal(h.sleep)
			save()
		}
		if now.Sub(lastSave) >= accountSave {
			save()
		}
		select {
		case <-ctx.Done():
			in, out := r.limiter.Counted()
			h.acct.Add(in-lastIn, out-lastOut)
			save()
			return
		case <-tick.C:
		}
	}
}

// membership runs republication (republish) while the relay is awake; it
// leaves the cluster while the relay hibernates and joins it again, with a
// fresh descriptor, when it wakes. It returns when ctx ends or a drain is
// asked for (Drain), with the node Run is to leave.
func (r *Relay) membership(ctx context.Context, node *gossip.Node, d *directory.Descriptor) *gossip.Node {
	for {
		r.republish(ctx, node, d)
		if ctx.Err() != nil || !r.hib.asleep.Load() {
			return node
		}
		// Leave, not Close: the seeds drop a node that says goodbye
		// at once. The node stays open (and a second Leave at the end
		// of Run is a no-op) until the relay wakes.
		if err := node.Leave(leaveTimeout); err != nil {
			r.log.Warn("hibernating: leaving the cluster", "err", err)
		}
		select {
		case <-ctx.Done():
			return node
		case <-r.drainReq:
			return node // Run drains: the circuits carried still end
		case <-r.hib.wake:
		}
		node.Close()
		var err error
		for {
			if d, err = r.pub.build(r.now(), r.orAddr, r.gossipAddr); err == nil {
				node, err = r.join(ctx, d)
			}
			if err == nil {
				break
			}
			r.log.Error("waking: joining the network again", "err", err)
			select {
			case <-ctx.Done():
				// A closed node: Run's Leave says ErrClosed.
				return node
			case <-r.drainReq:
				return node
			case <-time.After(republishCheck):
			}
		}
		r.viewMu.Lock()
		r.node = node
		r.viewMu.Unlock()
		r.log.Info("awake: joined the network again")
	}
}

// join starts membership with descriptor d, as Run does at start.
func (r *Relay) join(ctx context.Context, d *directory.Descriptor) (*gossip.Node, error) {
	return member.Join(ctx, member.Options{
		Identity: r.store.Identity(), Descriptor: d, BindAddr: r.gossipBind.String(), AdvertiseAddr: r.gossipAddr.String(),
		Join: r.cfg.Seeds, Gossip: &r.cfg.Gossip, Logger: r.log, Now: r.now,
	})
}

// refuseCreateAsleep refuses a CREATE while the relay hibernates, with
// DESTROY HIBERNATING, and reports whether it did.
func (e *engine) refuseCreateAsleep(l *link.Link, id uint32) bool {
	if !e.r.hib.asleep.Load() {
		return false
	}
	e.sendDestroy(l, id, onion.DestroyHibernating)
	l.ReleaseCircID(id)
	return true
}

// refuseAsleep refuses what would start something new on a circuit while
// the relay hibernates: an EXTEND (the circuit is destroyed, HIBERNATING)
// or a stream (END, HIBERNATING). It reports whether it did.
func (e *engine) refuseAsleep(circ *relayCircuit, m onion.RelayMessage) bool {
	if !e.r.hib.asleep.Load() {
		return false
	}
	switch m.Cmd {
	case onion.RelayExtend:
		e.destroy(circ, hop{}, onion.DestroyHibernating)
		return true
	case onion.RelayBegin, onion.RelayBeginDir, onion.RelayBeginStore:
		e.endStream(circ, m.StreamID, onion.EndHibernating)
		return true
	}
	return false
}
