package relay

import (
	"slices"
	"testing"
	"time"

	"veil/conf"
	"veil/onion/keys"
	"veil/relay/internal/ratelimit"
)

// TestReloadAppliesBandwidthCap: a reload sets a new cap on the links'
// limiter at once, lifts it with 0, and the descriptor advertises the
// lower of the cap and bandwidth_rate.
func TestReloadAppliesBandwidthCap(t *testing.T) {
	n := newTestNetwork(t, 1)
	n.relayEdit = func(c *conf.Relay) { c.RelayBandwidthRate = 4 * conf.MiB }
	r := n.startRelay("capped", false)
	c := n.client(t)
	want := map[keys.NodeID]bool{r.ID(): true}
	if got := r.limiter.Available(ratelimit.Write); got < float64(4*conf.MiB)-float64(ratelimit.MinBurst) {
		t.Fatalf("a relay started with a 4 MiB/s cap has a write bucket of %.0f bytes", got)
	}
	advertised := func(bw uint64) {
		t.Helper()
		deadline := time.Now().Add(hangTimeout)
		for {
			v := waitView(t, c, want)
			if e, ok := v.ByID(r.ID()); ok && e.Descriptor.Bandwidth == bw {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the descriptor never advertised %d bytes per second", bw)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	advertised(uint64(4 * conf.MiB)) // below bandwidth_rate's 10 MiB

	next := *r.cfg
	next.RelayBandwidthRate = 0
	applied, restart := r.Reload(&next)
	if !slices.Equal(applied, []string{"relay_bandwidth_rate"}) || len(restart) != 0 {
		t.Fatalf("applied %v, restart %v", applied, restart)
	}
	if r.limiter.Capped() {
		t.Fatal("a reload to relay_bandwidth_rate = 0 left the cap on")
	}
	advertised(uint64(r.cfg.BandwidthRate))

	next.RelayBandwidthRate, next.RelayBandwidthBurst = 100*conf.KiB, 200*conf.KiB
	applied, _ = r.Reload(&next)
	if !slices.Equal(applied, []string{"relay_bandwidth_rate", "relay_bandwidth_burst"}) || !r.limiter.Capped() {
		t.Fatalf("applied %v, capped %v", applied, r.limiter.Capped())
	}
	if got := r.limiter.Available(ratelimit.Write); got > float64(200*conf.KiB) {
		t.Fatalf("after a reload to a 200 KiB burst the bucket holds %.0f bytes", got)
	}
	advertised(uint64(100 * conf.KiB))
}
