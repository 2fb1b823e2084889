package relay

import (
	"context"
	"testing"
	"time"

	"veil/conf"
	"veil/onion"
	"veil/onion/keys"
)

// TestAccountingHibernatesAndWakes: a middle relay with accounting_max =
// 2 MiB carries a stream until the period's quota is spent. It then
// hibernates: it leaves the consensus, refuses a new circuit, and still
// carries the stream it had. When the next period begins it joins again
// and carries new circuits.
func TestAccountingHibernatesAndWakes(t *testing.T) {
	n := newTestNetwork(t, 1)
	want := map[keys.NodeID]bool{}
	want[n.startRelay("guard", false).ID()] = true
	n.relayEdit = func(c *conf.Relay) {
		c.AccountingMax = 2 * conf.MiB
		c.AccountingStart = conf.AccountingStart{Unit: conf.PeriodDay}
	}
	middle := n.startRelay("middle", false)
	n.relayEdit = nil
	want[middle.ID()] = true
	want[n.startRelay("exit", true).ID()] = true
	cl, v := testClient(t, n, want)
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	hops := hopsByName(t, n, v, "guard", "middle", "exit")
	c, err := cl.Build(ctx, hops)
	if err != nil {
		t.Fatal(err)
	}
	dst := echoTarget(t)
	s, err := c.Dial(ctx, onion.Begin{Addr: dst.Addr(), Port: dst.Port()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// Each round trip is a cell each way through the middle.
	deadline := time.Now().Add(hangTimeout)
	for !middle.hib.asleep.Load() {
		echoRoundTrips(t, s, 64)
		if time.Now().After(deadline) {
			t.Fatalf("the middle never hibernated: %+v", middle.hib.acct.State())
		}
	}
	t.Logf("hibernating after %+v", middle.hib.acct.State())
	dc := n.client(t)
	inView := func() bool {
		fctx, fcancel := context.WithTimeout(ctx, hangTimeout)
		defer fcancel()
		nv, err := dc.Fetch(fctx)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := nv.ByID(middle.ID())
		return ok
	}
	for inView() {
		if time.Now().After(deadline) {
			t.Fatal("the hibernating middle is still in the consensus")
		}
		time.Sleep(200 * time.Millisecond)
	}
	echoRoundTrips(t, s, 16) // the open stream goes on
	if _, err := cl.Build(ctx, hops); err == nil {
		t.Fatal("a hibernating relay took a new circuit")
	} else {
		t.Logf("a new circuit through it: %v", err)
	}

	middle.hib.ahead.Store(int64(25 * time.Hour)) // the next period
	for middle.hib.asleep.Load() || !inView() {
		if time.Now().After(deadline) {
			t.Fatalf("the middle did not wake and rejoin (asleep %v)", middle.hib.asleep.Load())
		}
		time.Sleep(200 * time.Millisecond)
	}
	c2, err := cl.Build(ctx, hops)
	if err != nil {
		t.Fatalf("a new circuit after waking: %v", err)
	}
	s2, err := c2.Dial(ctx, onion.Begin{Addr: dst.Addr(), Port: dst.Port()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	echoRoundTrips(t, s2, 4)
}
