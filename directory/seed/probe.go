package seed

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"veil/onion/keys"
)

// OR-port reachability (directory/SPEC.md §5.3, Running): a seed checks
// that each relay's OR port answers with the identity it claims. The
// checks run in the background, a bounded number at once, each relay when
// it is due; signing only reads their results, so relays that never answer
// cost a signing nothing (issue 14 item 6: 64 silent relays held one
// signing for 20 s, and a signing slowed by a loaded machine dropped live
// relays whose checks timed out).

const (
	// probeTimeout bounds one check of a relay's OR port, retries
	// included: a TLS handshake takes milliseconds, and a port that does
	// not answer should hold a check slot for no longer than this.
	probeTimeout = 5 * time.Second
	// probeAttempts and probeRetryDelay: a check that fails early is tried
	// again, so one connection lost or shed (a port flooded with junk may
	// close some connections while it serves the next) is not a failure.
	probeAttempts   = 3
	probeRetryDelay = 250 * time.Millisecond
	// maxProbes bounds checks running at once (G9): a check is a socket
	// and, when the port answers, a TLS handshake of a few milliseconds of
	// CPU. maxReachableProbes of them are kept for relays that have
	// answered at their current address, so that a crowd of members that
	// never answer cannot delay the checks that keep live relays Running;
	// those take milliseconds each, so 8 slots check thousands of relays a
	// minute. The rest serve newcomers and members that fail: a silent
	// port holds its slot for probeTimeout, so 24 slots get through 1,000
	// silent members in about 3.5 minutes, after which their backoff
	// leaves slots free.
	maxProbes          = 32
	maxReachableProbes = 8
	// probeTick is how often the prober looks for checks that are due.
	probeTick = 250 * time.Millisecond
	// maxProbeBackoff caps the wait before checking again a relay that
	// has never answered at its address: it doubles from the interval
	// with each failure, so junk members cost little, and a relay that
	// comes up late is still found within minutes.
	maxProbeBackoff = 10 * time.Minute
	// probeFailures and minProbeGrace: hysteresis. A relay that answered
	// stays reachable until at least probeFailures checks in a row have
	// failed over at least its grace period (probeGrace). One check lost
	// to a loaded machine, or to a flood on the relay's port, does not
	// drop a live relay; a port that is really gone is dropped within
	// three intervals (three minutes at the default 60 s, where Tor's
	// authorities wait 45). A relay that leaves gossip is dropped at once
	// all the same: gossip liveness, not this, is the fast path.
	probeFailures = 3
	minProbeGrace = 30 * time.Second
)

// poolSize is how many checks each pool may run at once.
var poolSize = [2]int{maxReachableProbes, maxProbes - maxReachableProbes}

// probeGrace is how long a relay that answered may fail its checks before
// it is no longer reachable: max(3 intervals, 30 s).
func probeGrace(interval time.Duration) time.Duration {
	return max(3*interval, minProbeGrace)
}

// target is a relay to check: its identity and OR address.
type target struct {
	id   keys.NodeID
	addr netip.AddrPort
}

// probeState is the prober's record of one relay.
type probeState struct {
	addr     netip.AddrPort // address of the latest target
	seen     time.Time      // last time it was a target
	next     time.Time      // when its next check is due
	inFlight bool           // a check is running
	pool     int            // while inFlight: the pool it holds a slot of

	okAddr       netip.AddrPort // where it last answered; zero once it has failed past its grace
	okAt         time.Time      // when it last answered
	failures     int            // checks failed in a row
	failingSince time.Time      // first of those failures
}

// prober runs the seed's OR-port checks. Run owns its goroutines.
type prober struct {
	check    func(ctx context.Context, addr string, id keys.NodeID) error // one attempt
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration // a relay that answered is checked again after this
	grace    time.Duration

	mu    sync.Mutex // guards the fields below
	state map[keys.NodeID]*probeState
	busy  [2]int // checks in flight by pool: 0 reachable relays, 1 the rest
}

func newProber(check func(ctx context.Context, addr string, id keys.NodeID) error, log *slog.Logger, now func() time.Time, interval time.Duration) *prober {
	return &prober{check: check, log: log, now: now, interval: interval, grace: probeGrace(interval), state: map[keys.NodeID]*probeState{}}
}

// run checks the relays targets returns, each when due, until ctx ends; on
// return every check it started has ended.
func (p *prober) run(ctx context.Context, targets func() []target) {
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(probeTick)
	defer tick.Stop()
	for {
		p.schedule(ctx, &wg, targets())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// schedule starts the checks that are due, in order, as far as
// each pool has free slots, and forgets relays that have not been targets
// for a grace period (so the table stays bounded by the membership, G9).
func (p *prober) schedule(ctx context.Context, wg *sync.WaitGroup, targets []target) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	type due struct {
		t  target
		st *probeState
	}
	var ready []due
	for _, t := range targets {
		st := p.state[t.id]
		if st == nil {
			st = &probeState{addr: t.addr, next: now}
			p.state[t.id] = st
		}
		st.seen = now
		if st.addr != t.addr {
			// A new address must answer before it counts; check it now.
			st.addr, st.next, st.failures, st.failingSince = t.addr, now, 0, time.Time{}
		}
		if !st.inFlight && !now.Before(st.next) {
			ready = append(ready, due{t, st})
		}
	}
	// Fewest failures first, then most overdue: a newcomer, or a relay
	// that has been answering, goes before members that keep failing, so
	// a crowd of silent members delays it by one check's timeout at most.
	slices.SortFunc(ready, func(a, b due) int {
		if a.st.failures != b.st.failures {
			return a.st.failures - b.st.failures
		}
		return a.st.next.Compare(b.st.next)
	})
	for _, d := range ready {
		pool := 1
		if d.st.okAddr == d.t.addr {
			pool = 0
		}
		if p.busy[pool] >= poolSize[pool] {
			continue
		}
		p.busy[pool]++
		d.st.inFlight, d.st.pool = true, pool
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.probeRelay(ctx, d.t.addr.String(), d.t.id)
			if ctx.Err() != nil {
				err = ctx.Err() // stopping: not the relay's fault
			}
			p.record(d.t, err)
		}()
	}
	for id, st := range p.state {
		if !st.inFlight && now.Sub(st.seen) > p.grace {
			delete(p.state, id)
		}
	}
}

// record notes the result of a check of t.
func (p *prober) record(t target, err error) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state[t.id]
	if st == nil || !st.inFlight {
		return
	}
	st.inFlight = false
	p.busy[st.pool]--
	if st.addr != t.addr || errors.Is(err, context.Canceled) {
		return // checked an address it no longer has, or the seed is stopping
	}
	if err == nil {
		if st.okAddr != t.addr || st.failures > 0 {
			p.log.Debug("relay OR port answers", "node", t.id.Short(), "addr", t.addr.String())
		}
		st.okAddr, st.okAt, st.failures, st.failingSince = t.addr, now, 0, time.Time{}
		st.next = now.Add(p.interval)
		return
	}
	st.failures++
	if st.failures == 1 {
		st.failingSince = now
	}
	if st.okAddr == t.addr {
		// Reachable until the grace runs out: keep checking it at the
		// usual pace, so that the grace is judged on time.
		p.log.Info("relay OR port check failed", "node", t.id.Short(), "addr", t.addr.String(), "failures", st.failures, "err", err)
		st.next = now.Add(p.interval)
		if st.failures >= probeFailures && now.Sub(st.failingSince) >= p.grace {
			p.log.Info("relay OR port unreachable", "node", t.id.Short(), "addr", t.addr.String(), "since", st.failingSince.UTC())
			st.okAddr = netip.AddrPort{}
		}
		return
	}
	// Never answered here, or no longer: back off, so members that never
	// answer cost a check every few minutes at most.
	p.log.Debug("relay OR port check failed", "node", t.id.Short(), "addr", t.addr.String(), "failures", st.failures, "err", err)
	st.next = now.Add(backoff(p.interval, st.failures))
}

// backoff is interval doubled for each failure after the first, at most
// maxProbeBackoff.
func backoff(interval time.Duration, failures int) time.Duration {
	d := interval
	for i := 1; i < failures && d < maxProbeBackoff; i++ {
		d *= 2
	}
	return min(d, maxProbeBackoff)
}

// reachable says whether the relay id answered at addr and has not failed
// its checks past the grace since (the Running rule's OR-port half).
func (p *prober) reachable(id keys.NodeID, addr netip.AddrPort, now time.Time) (ok bool, okAt time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state[id]
	if st == nil || !st.okAddr.IsValid() || st.okAddr != addr {
		return false, time.Time{}
	}
	if st.failures >= probeFailures && now.Sub(st.failingSince) >= p.grace {
		return false, time.Time{}
	}
	return true, st.okAt
}

// restore seeds the prober with a check remembered from before a restart:
// a relay that answered within the grace counts as having answered, until
// its next check (due at once) says otherwise.
func (p *prober) restore(id keys.NodeID, addr netip.AddrPort, okAt time.Time) {
	now := p.now()
	if !addr.IsValid() || now.Sub(okAt) >= p.grace || okAt.After(now) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.state[id]; ok {
		return
	}
	p.state[id] = &probeState{addr: addr, seen: now, next: now, okAddr: addr, okAt: okAt}
}

// probeRelay checks one relay's OR port within probeTimeout, in up to
// probeAttempts tries, and returns the last error.
func (p *prober) probeRelay(ctx context.Context, addr string, id keys.NodeID) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := p.check(ctx, addr, id)
		if err == nil || attempt == probeAttempts {
			return err
		}
		t := time.NewTimer(probeRetryDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}
