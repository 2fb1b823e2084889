package relay

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"veil/directory"
	"veil/directory/gossip"
	"veil/directory/member"
	"veil/onion/keys"
)

// Attacks on the directory by relays: each joins real seeds over real
// gossip and checks what the seeds sign.

// twinMember joins the seeds' gossip as a second member that carries the
// identity of the relay whose data directory is dir, under its own gossip
// name, pointing at that relay's OR port (so the seed's reachability
// check succeeds). A relay can always do this with its own key.
func twinMember(t *testing.T, n *testNetwork, dir string, orAddr netip.AddrPort, name string) *gossip.Node {
	t.Helper()
	st, err := keys.Open(dir, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := st.Identity()
	current, _ := st.OnionKeys()
	gossipAddr := netip.MustParseAddrPort(freeAddr(t))
	now := time.Now().Truncate(time.Second)
	d := &directory.Descriptor{OnionCert: current.Cert(), Nickname: "twin", ORAddr: orAddr,
		GossipName: name, GossipAddr: gossipAddr, Bandwidth: 1 << 20,
		ProtocolVersion: 2, Sequence: uint64(now.Unix()), Published: now, Expires: now.Add(time.Hour),
	}
	if _, err := d.Sign(id); err != nil {
		t.Fatal(err)
	}
	ptr, err := d.Pointer().Sign(id)
	if err != nil {
		t.Fatal(err)
	}
	v := member.Verifier{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	node, err := gossip.Start(ctx, gossip.Config{Name: name, BindAddr: gossipAddr.String(), Join: n.gossip,
		Pointer: ptr, Descriptor: d.Bytes(), VerifyPointer: v.Pointer, VerifyDescriptor: v.Descriptor,
		Timing: member.Timing("local")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	return node
}

// TestAttackDuplicateIdentityKeepsSigning: a relay joins gossip twice with
// its own identity under two names. The seed lists the identity once (or
// not at all) and goes on signing consensuses that hold every honest relay;
// before, its signing failed as a whole ("not strictly after the previous
// node ID") and every client lost the directory when the last one expired.
func TestAttackDuplicateIdentityKeepsSigning(t *testing.T) {
	n := newTestNetwork(t, 1)
	want := map[keys.NodeID]bool{}
	for i := 0; i < 3; i++ {
		want[n.startRelay(fmt.Sprint("relay", i), i == 0).ID()] = true
	}
	// The attacker's relay: its keys first, so that the test holds them.
	dir := filepath.Join(n.dir, "attacker")
	if _, err := keys.Open(dir, keys.Options{}); err != nil {
		t.Fatal(err)
	}
	attacker := n.startRelay("attacker", false)
	want[attacker.ID()] = true
	c := n.client(t)
	waitView(t, c, want)

	twinMember(t, n, dir, attacker.ORAddr(), "twin-of-the-attacker")
	// Every consensus signed from now on must still come, with every
	// honest relay in it.
	joined := time.Now()
	honest := map[keys.NodeID]bool{}
	for id := range want {
		if id != attacker.ID() {
			honest[id] = true
		}
	}
	deadline := time.Now().Add(hangTimeout)
	for {
		v := n.seeds[0].Latest()
		if v != nil && v.ValidAfter.After(joined.Add(3*time.Second)) {
			seen := 0
			ids := map[keys.NodeID]int{}
			for _, e := range v.Relays {
				ids[e.Descriptor.NodeID()]++
				if honest[e.Descriptor.NodeID()] {
					seen++
				}
			}
			if seen != len(honest) {
				t.Fatalf("the consensus after the twin joined lists %d of %d honest relays", seen, len(honest))
			}
			if ids[attacker.ID()] > 1 {
				t.Fatalf("the attacker's identity is listed %d times", ids[attacker.ID()])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the seed signed nothing since the twin joined (latest valid-after %v)", v.ValidAfter)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
