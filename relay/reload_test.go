package relay

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"veil/onion/keys"
)

// TestReloadAppliesExitPolicyAndDescriptor: a reload swaps the exit
// policy of new streams and republishes the descriptor with the new
// contact, and names the keys that need a restart without applying them.
func TestReloadAppliesExitPolicyAndDescriptor(t *testing.T) {
	n := newTestNetwork(t, 1)
	r := n.startRelay("exit", true)
	want := map[keys.NodeID]bool{r.ID(): true}
	c := n.client(t)
	waitView(t, c, want)

	next := *r.cfg
	next.ExitPolicy = []string{"reject *:*"}
	next.Exit = true
	next.Contact = "ops@example.org"
	next.ORAddr = "127.0.0.1:1"
	applied, restart := r.Reload(&next)
	if !slices.Contains(applied, "exit_policy") || !slices.Contains(applied, "contact") || !slices.Equal(restart, []string{"or_addr"}) {
		t.Fatalf("applied %v, restart %v", applied, restart)
	}
	if r.eng.Load().exiter.policy.Load().Allows(netip.MustParseAddr("127.0.0.1"), 80) {
		t.Fatal("the reloaded policy does not refuse what it should")
	}
	deadline := time.Now().Add(hangTimeout)
	for {
		v := waitView(t, c, want)
		if e, ok := v.ByID(r.ID()); ok && e.Descriptor.Contact == "ops@example.org" {
			if e.Flags&(1<<0) != 0 {
				t.Fatalf("a relay whose policy rejects everything still has Exit")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the descriptor never carried the reloaded contact")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r.ORAddr().Port() == 1 {
		t.Fatal("or_addr changed without a restart")
	}
}
