package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestPushPullPeriod(t *testing.T) {
	for _, tc := range []struct {
		timing Timing
		n      int
		want   time.Duration
	}{
		{LAN(), 1, 30 * time.Second},
		{LAN(), 32, 30 * time.Second},
		{LAN(), 33, 60 * time.Second}, // memberlist's scaling: ×(⌈log2 n − 5⌉ + 1)
		{LAN(), 100, 90 * time.Second},
		{LAN(), 300, 150 * time.Second},
		{LAN(), 1000, 180 * time.Second},
		{LAN(), 2000, 300 * time.Second}, // n × 150 ms from here on
		{LAN(), 7000, 1050 * time.Second},
		{Fast(), 10, 2 * time.Second},
		{Fast(), 100, 6 * time.Second},
		{Fast(), 1000, 12 * time.Second},
		{Fast(), 7000, 70 * time.Second},
		{Timing{}, 7000, 1050 * time.Second}, // zero fields are LAN's
	} {
		if got := tc.timing.withDefaults().pushPullPeriod(tc.n); got != tc.want {
			t.Errorf("%+v n=%d: %v, want %v", tc.timing, tc.n, got, tc.want)
		}
	}
}

// TestPushPullRuns checks that every node runs push/pulls on this
// package's timer (memberlist's own is off).
func TestPushPullRuns(t *testing.T) {
	checkLeaks(t)
	const count = 3
	counts := make([]*traffic, count)
	nodes := make([]*Node, 0, count)
	for i := range count {
		var join []string
		if i > 0 {
			join = []string{nodes[0].Addr().String()}
		}
		cfg := testConfig(fmt.Sprintf("pp%d", i), 1, join...)
		cfg.Timing.PushPullInterval = 200 * time.Millisecond
		c := new(traffic)
		counts[i] = c
		cfg.wrapTransport = func(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
			return newCountingTransport(t, c)
		}
		nodes = append(nodes, start(t, cfg))
	}
	waitConverged(t, nodes, converge)
	before := make([]int64, count)
	for i, c := range counts {
		before[i] = c.exchange.Load()
	}
	waitFor(t, converge, "every node to start 3 push/pulls", func() bool {
		for i, c := range counts {
			if c.exchange.Load()-before[i] < 3 {
				return false
			}
		}
		return true
	})
}

// TestRejoinSpendsPushPullTurns: a member whose descriptor never verifies
// here stays a re-join candidate for good. Each re-join that answers is a
// full state exchange, so it may cost at most one a push/pull period, not
// one each RejoinInterval (with 7,000 members, 150 KB/s a node for every
// such member). Before, the seed below re-joined it every 100 ms.
func TestRejoinSpendsPushPullTurns(t *testing.T) {
	checkLeaks(t)
	timing := Fast()
	timing.RejoinInterval = 100 * time.Millisecond
	timing.PushPullInterval = time.Second
	var seedTraffic traffic
	seedCfg := testConfig("seed", 1)
	seedCfg.Timing = timing
	seedCfg.VerifyDescriptor = func(p PointerInfo, d []byte) error {
		if p.Key == "bad" {
			return fmt.Errorf("never verifies")
		}
		return fakeVerifyDescriptor(p, d)
	}
	seedCfg.wrapTransport = func(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
		return newCountingTransport(t, &seedTraffic)
	}
	seed := start(t, seedCfg)
	badCfg := testConfig("bad", 1, seed.Addr().String())
	badCfg.Timing = timing
	start(t, badCfg)
	waitFor(t, converge, "the seed to fail fetching twice", func() bool {
		seed.mu.Lock()
		defer seed.mu.Unlock()
		p := seed.peers["bad"]
		return p != nil && p.alive && p.attempts >= 2
	})
	const span = 3 * time.Second
	before := seedTraffic.exchange.Load()
	time.Sleep(span)
	got := seedTraffic.exchange.Load() - before
	// One re-join a period (1 s here, 2 members) and the periodic
	// push/pulls (jittered to 0.5..1.5 s): about 6 in 3 s.
	if limit := int64(10); got > limit {
		t.Errorf("the seed started %d state exchanges in %v, want at most %d", got, span, limit)
	}
	t.Logf("%d state exchanges in %v", got, span)
}
