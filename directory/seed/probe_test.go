package seed

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"veil/onion/keys"
)

// A check that fails early is tried again, up to probeAttempts times, so
// one connection shed by a busy port does not drop a relay; one that keeps
// failing reports its last error.
func TestProbeRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failures int
		wantErr  bool
	}{
		{"first try", 0, false},
		{"after two failures", probeAttempts - 1, false},
		{"always failing", probeAttempts, true},
	} {
		calls := 0
		p := &prober{check: func(ctx context.Context, addr string, id keys.NodeID) error {
			if _, ok := ctx.Deadline(); !ok {
				t.Errorf("%s: probe without a deadline", tc.name)
			}
			calls++
			if calls <= tc.failures {
				return errors.New("connection reset")
			}
			return nil
		}}
		err := p.probeRelay(context.Background(), "127.0.0.1:1", keys.NodeID{})
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err %v", tc.name, err)
		}
		if want := min(tc.failures+1, probeAttempts); calls != want {
			t.Errorf("%s: %d attempts, want %d", tc.name, calls, want)
		}
	}
}

// fakeClock is a settable clock for the prober.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// TestProberHysteresis: a relay that answered stays reachable until at
// least probeFailures checks in a row have failed over its grace period;
// a new address must answer before it counts.
func TestProberHysteresis(t *testing.T) {
	clock := &fakeClock{t: t0}
	p := newProber(nil, slog.New(slog.DiscardHandler), clock.now, time.Second)
	tg := target{id: keys.NodeID{1}, addr: netip.MustParseAddrPort("10.0.0.1:9001")}
	check := func(at time.Duration, err error) {
		t.Helper()
		clock.set(t0.Add(at))
		p.mu.Lock()
		st := p.state[tg.id]
		if st == nil {
			st = &probeState{addr: tg.addr}
			p.state[tg.id] = st
		}
		st.inFlight, st.pool = true, 1
		p.busy[1]++
		p.mu.Unlock()
		p.record(tg, err)
	}
	reachable := func(at time.Duration) bool {
		ok, _ := p.reachable(tg.id, tg.addr, t0.Add(at))
		return ok
	}
	if reachable(0) {
		t.Fatal("reachable before any check")
	}
	failed := errors.New("timeout")
	check(0, nil)
	if !reachable(0) {
		t.Fatal("not reachable after a check that answered")
	}
	// Failures in a row, but within the grace (30 s here): still there.
	check(time.Second, failed)
	check(2*time.Second, failed)
	check(3*time.Second, failed)
	if !reachable(20 * time.Second) {
		t.Fatal("three failures within the grace dropped the relay")
	}
	// Two failures over a long time are not enough either.
	check(4*time.Second, nil)
	check(5*time.Second, failed)
	check(60*time.Second, failed)
	if !reachable(61 * time.Second) {
		t.Fatal("two failures dropped the relay")
	}
	check(62*time.Second, failed)
	if reachable(62 * time.Second) {
		t.Fatal("three failures over the grace did not drop the relay")
	}
	// It answers again: back at once.
	check(63*time.Second, nil)
	if !reachable(63 * time.Second) {
		t.Fatal("a relay that answers again is not reachable")
	}
	// Another address counts only once it answers there.
	if ok, _ := p.reachable(tg.id, netip.MustParseAddrPort("10.0.0.2:9001"), t0.Add(63*time.Second)); ok {
		t.Fatal("reachable at an address it never answered on")
	}
}

// TestProberSilentMembersCostLittle: checks run in the background, at most
// maxProbes at once. A crowd of members that never answer holds only its
// half of the slots, so a relay that answers is still checked every
// interval; once the crowd has failed, a newcomer is checked before it, as
// soon as a slot frees. When the prober stops, every check has ended.
func TestProberSilentMembersCostLittle(t *testing.T) {
	const (
		silent        = 48 // twice the slots they may hold
		silentTimeout = 300 * time.Millisecond
	)
	live, newcomer := keys.NodeID{0xff}, keys.NodeID{0xfe}
	var mu sync.Mutex // guards the counters and targets
	inFlight, peak, liveChecks := 0, 0, 0
	var targets []target
	check := func(ctx context.Context, addr string, id keys.NodeID) error {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		if id == live {
			liveChecks++
		}
		mu.Unlock()
		defer func() { mu.Lock(); inFlight--; mu.Unlock() }()
		if id == live || id == newcomer {
			return nil
		}
		// Silent: hold the slot until a timeout, shortened to keep the
		// test short (with the retries, a check takes 1.4 s).
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(silentTimeout):
			return context.DeadlineExceeded
		}
	}
	add := func(id keys.NodeID, addr netip.AddrPort) {
		mu.Lock()
		targets = append(targets, target{id: id, addr: addr})
		mu.Unlock()
	}
	p := newProber(check, slog.New(slog.DiscardHandler), time.Now, 300*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.run(ctx, func() []target { mu.Lock(); defer mu.Unlock(); return slices.Clone(targets) })
		close(done)
	}()
	reachable := func(id keys.NodeID, addr netip.AddrPort, within time.Duration) time.Duration {
		start := time.Now()
		for {
			if ok, _ := p.reachable(id, addr, time.Now()); ok {
				return time.Since(start)
			}
			if time.Since(start) > within {
				t.Fatalf("%x not reachable within %v", id[:1], within)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	liveAddr := netip.MustParseAddrPort("10.9.9.9:9001")
	add(live, liveAddr)
	reachable(live, liveAddr, 2*time.Second)
	for i := range silent {
		add(keys.NodeID{byte(i), 1}, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), 9001))
	}
	mu.Lock()
	liveChecks = 0
	mu.Unlock()
	time.Sleep(3 * time.Second)
	mu.Lock()
	checked := liveChecks
	mu.Unlock()
	// About one check per interval, less the ticks; none if it had to
	// wait behind the crowd.
	if checked < 4 {
		t.Fatalf("the live relay was checked %d times in 3 s with an interval of 0.3 s", checked)
	}
	// The crowd has all failed once by now (two rounds of 1.4 s); a
	// newcomer goes before it, as soon as a slot frees.
	time.Sleep(time.Second)
	newAddr := netip.MustParseAddrPort("10.9.9.8:9001")
	add(newcomer, newAddr)
	took := reachable(newcomer, newAddr, 2*time.Second)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if inFlight != 0 {
		t.Fatalf("%d checks still running after the prober stopped", inFlight)
	}
	if peak > maxProbes {
		t.Fatalf("%d checks at once, limit %d", peak, maxProbes)
	}
	t.Logf("%d silent members: %d checks at once at most; the live relay checked %d times in 3 s; a newcomer reachable after %v",
		silent, peak, checked, took.Round(time.Millisecond))
}
