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
