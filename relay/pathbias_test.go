package relay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"veil/directory"
	"veil/onion/keys"
	"veil/relay/client"
	"veil/relay/path"
)

// TestAttackSelectiveGuardFlagged: a client's guard destroys every circuit
// it is asked to extend to a middle that is not its accomplice's, saying
// CONNECTFAILED as if the middle were down, so that the client's retries
// land on circuits whose first two hops the adversary holds. The client
// blames the guard, not the middle (relay/path/SPEC.md §1.3): the guard's
// rate of completed circuits falls below BiasDisableRate, it is dropped,
// and the client's circuits go through a new guard and honest middles.
//
// Before issue 15 the client marked each middle the guard refused as
// unreachable for 30 s and kept the guard: within a few circuits every
// circuit it built went through the accomplice.
func TestAttackSelectiveGuardFlagged(t *testing.T) {
	n := newTestNetwork(t, 1)
	want := map[keys.NodeID]bool{}
	evil := map[keys.NodeID]bool{}
	accomplice := n.startRelay("accomplice", false)
	evil[accomplice.ID()] = true
	want[accomplice.ID()] = true
	n.refuseExtend = func(to keys.NodeID) bool { return to != accomplice.ID() }
	guard := n.startRelay("guard", false)
	n.refuseExtend = nil
	evil[guard.ID()] = true
	want[guard.ID()] = true
	for i := range 5 {
		want[n.startRelay(fmt.Sprint("honest", i), false).ID()] = true
	}
	for i := range 2 {
		want[n.startRelay(fmt.Sprint("exit", i), true).ID()] = true
	}
	v := waitView(t, n.client(t), want)

	// The client kept the hostile guard first, as a client that drew it
	// would (the guard file of relay/path/SPEC.md §1.2).
	dir := t.TempDir()
	file := fmt.Sprintf("veil guards v1\n%s %d 0\n", guard.ID(), time.Now().Unix())
	if err := os.WriteFile(filepath.Join(dir, path.GuardFile), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	sel, err := path.NewSelector(path.Options{DataDir: dir, AllowSameSubnet: true})
	if err != nil {
		t.Fatal(err)
	}
	cl := client.New(client.Options{View: func() *directory.View { return v }, Paths: sel})
	t.Cleanup(cl.Close)
	dest := path.Destination{Host: "example.test", Port: 80}

	// The client builds circuits as circuitFor does, drawing a path and
	// building it, and tries again when a build fails.
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	const attempts = 400
	var built, captured, failed, flaggedAt int
	for i := 0; i < attempts && flaggedAt == 0; i++ {
		hops, err := sel.Path(v, dest)
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		c, err := cl.Build(ctx, hops)
		if err != nil {
			var d *client.DestroyedError
			if !errors.As(err, &d) {
				t.Fatalf("attempt %d: %v", i, err)
			}
			failed++
		} else {
			built++
			if evil[hops[0].Descriptor.NodeID()] && evil[hops[1].Descriptor.NodeID()] {
				captured++
			}
			c.Close()
		}
		if b, _ := sel.GuardBias(guard.ID()); !b.Disabled.IsZero() {
			flaggedAt = i + 1
		}
	}
	b, _ := sel.GuardBias(guard.ID())
	t.Logf("%d circuits built, %d of them through the guard and its accomplice, %d destroyed by the guard; guard's record %+v",
		built, captured, failed, b)
	if flaggedAt == 0 {
		t.Fatalf("after %d attempts the guard is still in use: %d of %d circuits built went through the guard and its accomplice",
			attempts, captured, built)
	}
	t.Logf("guard stopped after %d attempts", flaggedAt)

	// From now on the hostile guard carries nothing, and the client's
	// circuits do not all end at adversary relays. (Drawn as a middle, the
	// stopped guard still destroys some circuits; the client retries.)
	built, captured = 0, 0
	for i := range 30 {
		hops, err := sel.Path(v, dest)
		if err != nil {
			t.Fatalf("after the guard was stopped, attempt %d: %v", i, err)
		}
		if hops[0].Descriptor.NodeID() == guard.ID() {
			t.Fatal("the stopped guard was used again")
		}
		c, err := cl.Build(ctx, hops)
		if err != nil {
			if hops[1].Descriptor.NodeID() != guard.ID() {
				t.Fatalf("after the guard was stopped, attempt %d: %v", i, err)
			}
			continue
		}
		built++
		if evil[hops[0].Descriptor.NodeID()] && evil[hops[1].Descriptor.NodeID()] {
			captured++
		}
		c.Close()
	}
	if built < 10 || captured == built {
		t.Fatalf("%d circuits built after the guard was stopped, %d of them through adversary relays", built, captured)
	}
	t.Logf("after: %d circuits built, %d through adversary relays", built, captured)
	// A new process keeps the guard stopped (SPEC.md §1.3.2).
	again, err := path.NewSelector(path.Options{DataDir: dir, AllowSameSubnet: true})
	if err != nil {
		t.Fatal(err)
	}
	g, err := again.Guard(v)
	if err != nil {
		t.Fatal(err)
	}
	if g.Descriptor.NodeID() == guard.ID() {
		t.Fatal("a new process chose the stopped guard again")
	}
}
