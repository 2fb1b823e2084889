package relay

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"veil/conf"
	"veil/directory"
	"veil/directory/gossip"
	"veil/directory/linkauth"
	"veil/directory/member"
	"veil/onion/keys"
	"veil/relay/client"
	"veil/relay/path"
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
	m := handMember{name: name, gossipAddr: netip.MustParseAddrPort(freeAddr(t))}
	ptr, d := m.signed(t, st.Identity(), orAddr, uint64(time.Now().Unix()))
	return m.join(t, n, ptr, d)
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

// orStub accepts TLS links as id on 127.0.0.1 and closes them: enough for a
// seed's reachability check of a relay the test plays by hand.
func orStub(t *testing.T, id *keys.Identity) netip.AddrPort {
	t.Helper()
	cfg, err := linkauth.ServerConfig(id, linkauth.AnonymousClients)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				c.(*tls.Conn).Handshake()
				c.Read(make([]byte, 1))
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// handMember is a gossip member the test plays: a descriptor of id under
// gossip name name (which honest members make their node ID), at a new
// gossip address, for a relay whose OR port is orAddr.
type handMember struct {
	name       string
	gossipAddr netip.AddrPort
}

func (m handMember) signed(t *testing.T, id *keys.Identity, orAddr netip.AddrPort, seq uint64) (ptr []byte, desc *directory.Descriptor) {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	ok, err := keys.GenerateOnionKey(id, rand.Reader, now, now.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	d := &directory.Descriptor{OnionCert: ok.Cert(), Nickname: "hand", ORAddr: orAddr,
		GossipName: m.name, GossipAddr: m.gossipAddr, Bandwidth: 1 << 20,
		ProtocolVersion: 2, Sequence: seq, Published: now, Expires: now.Add(time.Hour)}
	if _, err := d.Sign(id); err != nil {
		t.Fatal(err)
	}
	ptr, err = d.Pointer().Sign(id)
	if err != nil {
		t.Fatal(err)
	}
	return ptr, d
}

// join starts the member. It checks other members' pointers as honest
// nodes do, and its own not at all: an attacker's node would not refuse to
// send what it likes.
func (m handMember) join(t *testing.T, n *testNetwork, ptr []byte, d *directory.Descriptor) *gossip.Node {
	t.Helper()
	v := member.Verifier{}
	verify := func(name string, addr netip.AddrPort, meta []byte) (gossip.PointerInfo, error) {
		if name != m.name {
			return v.Pointer(name, addr, meta)
		}
		p, err := directory.ParsePointer(meta)
		if err != nil {
			return gossip.PointerInfo{}, err
		}
		return gossip.PointerInfo{Key: p.NodeID().String(), Seq: p.Sequence, Digest: p.Digest}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	node, err := gossip.Start(ctx, gossip.Config{Name: m.name, BindAddr: m.gossipAddr.String(), Join: n.gossip,
		Pointer: ptr, Descriptor: d.Bytes(), VerifyPointer: verify, VerifyDescriptor: v.Descriptor,
		Timing: member.Timing("local")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	return node
}

// seesMember waits until node lists a member named name: proof that the
// two exchanged state, so that the other side saw node's pointer.
func seesMember(t *testing.T, node *gossip.Node, name string) {
	t.Helper()
	deadline := time.Now().Add(hangTimeout)
	for time.Now().Before(deadline) {
		for _, m := range node.Members() {
			if m.Name == name {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never saw %s", node.Name(), name)
}

// TestAttackNameSquatRefused: while an honest relay restarts, a stranger
// joins gossip under the honest relay's name (its node ID) with a pointer
// signed by the stranger's own key. A member's name must be its node ID,
// so the seeds refuse the stranger, and the honest relay rejoins; before,
// memberlist kept the honest relay out as a name conflict.
func TestAttackNameSquatRefused(t *testing.T) {
	n := newTestNetwork(t, 1)
	want := map[keys.NodeID]bool{}
	for i := 0; i < 3; i++ {
		want[n.startRelay(fmt.Sprint("relay", i), i == 0).ID()] = true
	}
	victim := n.startRelay("victim", false).ID()
	want[victim] = true
	c := n.client(t)
	waitView(t, c, want)

	n.stopRelay("victim")
	delete(want, victim)
	waitView(t, c, want)

	stranger, err := keys.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	squat := handMember{name: victim.String(), gossipAddr: netip.MustParseAddrPort(freeAddr(t))}
	ptr, d := squat.signed(t, stranger, orStub(t, stranger), 1)
	node := squat.join(t, n, ptr, d)
	seesMember(t, node, n.seeds[0].ID().String())

	n.startRelay("victim", false)
	want[victim] = true
	v := waitView(t, c, want)
	if _, ok := v.ByID(stranger.ID()); ok {
		t.Fatal("the stranger is listed")
	}
}

// TestAttackIdentitySwapStartsFresh: a member that has been up long enough
// for Guard swaps a new identity key in under its old name. Uptime and
// flags follow the identity key: the new key is not listed with the old
// membership's Guard flag, and when it joins under its own name it starts
// with no uptime.
func TestAttackIdentitySwapStartsFresh(t *testing.T) {
	const guardAfter = 4 * time.Second
	n := newTestNetworkWith(t, 1, func(c *conf.Seed) { c.GuardMinUptime = conf.Duration(guardAfter) })
	for i := 0; i < 3; i++ {
		n.startRelay(fmt.Sprint("relay", i), i == 0)
	}
	old, err := keys.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := keys.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m := handMember{name: old.ID().String(), gossipAddr: netip.MustParseAddrPort(freeAddr(t))}
	ptr, d := m.signed(t, old, orStub(t, old), 1)
	node := m.join(t, n, ptr, d)

	flagsOf := func(id keys.NodeID) (directory.Flags, bool) {
		v := n.seeds[0].Latest()
		if v == nil {
			return 0, false
		}
		for _, e := range v.Relays {
			if e.Descriptor.NodeID() == id {
				return e.Flags, true
			}
		}
		return 0, false
	}
	deadline := time.Now().Add(hangTimeout)
	for {
		if f, ok := flagsOf(old.ID()); ok && f&directory.FlagGuard != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the old identity never got Guard")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The swap: the same name and gossip address, a pointer and descriptor
	// of the new key.
	freshOR := orStub(t, fresh)
	ptr, d = m.signed(t, fresh, freshOR, 2)
	if err := node.UpdateSelf(ptr, d.Bytes()); err != nil {
		t.Fatal(err)
	}
	swapped := time.Now()
	for time.Since(swapped) < guardAfter-time.Second {
		if f, ok := flagsOf(fresh.ID()); ok && f&directory.FlagGuard != 0 {
			t.Fatalf("the new key has Guard %v after the swap: it inherited the old name's uptime", time.Since(swapped).Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Under its own name the new key is a new member, with no uptime.
	node.Close()
	own := handMember{name: fresh.ID().String(), gossipAddr: netip.MustParseAddrPort(freeAddr(t))}
	ptr, d = own.signed(t, fresh, freshOR, 3)
	own.join(t, n, ptr, d)
	joined := time.Now()
	for {
		f, ok := flagsOf(fresh.ID())
		if ok {
			if f&directory.FlagGuard != 0 && time.Since(joined) < guardAfter {
				t.Fatalf("the new key has Guard %v after joining", time.Since(joined).Round(time.Millisecond))
			}
			return
		}
		if time.Since(joined) > hangTimeout {
			t.Fatal("the new key, under its own name, was never listed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// measureBandwidth makes every seed of n time its relays as `veil seed`
// does, until the test ends.
func (n *testNetwork) measureBandwidth(t *testing.T) {
	for _, s := range n.seeds {
		sel, err := path.NewSelector(path.Options{})
		if err != nil {
			t.Fatal(err)
		}
		cl := client.New(client.Options{Paths: sel})
		ctx, cancel := context.WithCancel(context.Background())
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer cl.Close()
			s.MeasureBandwidth(ctx, func(ctx context.Context, e directory.Entry) (float64, error) {
				return cl.Measure(ctx, e, 256)
			})
		}()
		t.Cleanup(cancel)
	}
}

// TestAttackBandwidthLiarGetsMeasuredWeight: one relay claims a thousand
// times the bandwidth the others claim (each at least what this machine
// gives a relay, so no honest claim binds). The seed measures every relay
// and signs what it measured; clients draw middles by it. The liar is
// drawn at most twice as often as an honest relay; before, its claim,
// capped at ten times the median, made it about ten times as likely.
func TestAttackBandwidthLiarGetsMeasuredWeight(t *testing.T) {
	n := newTestNetwork(t, 1)
	n.measureBandwidth(t)
	const honestClaim = 4 << 30 // above what a relay moves on loopback here
	claim := conf.Size(honestClaim)
	n.relayEdit = func(c *conf.Relay) { c.BandwidthRate = claim }
	want := map[keys.NodeID]bool{}
	want[n.startRelay("exit", true).ID()] = true
	var honest []keys.NodeID
	for i := 0; i < 4; i++ {
		id := n.startRelay(fmt.Sprint("honest", i), false).ID()
		want[id], honest = true, append(honest, id)
	}
	claim = 1000 * honestClaim
	liar := n.startRelay("liar", false).ID()
	want[liar] = true
	c := n.client(t)
	waitView(t, c, want)

	// Wait until every relay has been measured, then for another round,
	// so that each weight is a median of more than one run.
	var v *directory.View
	deadline := time.Now().Add(hangTimeout)
	rounds := 0
	for rounds < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the seed never measured every relay")
		}
		time.Sleep(time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
		got, err := c.Fetch(ctx)
		cancel()
		if err != nil {
			continue
		}
		measured := 0
		for _, e := range got.Relays {
			if e.Weight > 0 {
				measured++
			}
		}
		if measured == len(want) && (v == nil || got.ValidAfter.Sub(v.ValidAfter) > 10*time.Second) {
			v, rounds = got, rounds+1
		}
	}
	for _, e := range v.Relays {
		t.Logf("%s: claims %d MB/s, measured %d MB/s", e.Descriptor.Nickname, e.Descriptor.Bandwidth>>20, e.Weight>>10)
	}

	// Draw paths as new clients do, each with a selector of its own: the
	// guard a client keeps, and the middle, are what a liar wants.
	dst := echoTarget(t)
	guards, middles := map[keys.NodeID]int{}, map[keys.NodeID]int{}
	for range 3000 {
		sel, err := path.NewSelector(path.Options{AllowSameSubnet: true})
		if err != nil {
			t.Fatal(err)
		}
		p, err := sel.Path(v, path.Destination{Addr: dst.Addr(), Port: dst.Port()})
		if err != nil {
			t.Fatal(err)
		}
		guards[p[0].Descriptor.NodeID()]++
		middles[p[1].Descriptor.NodeID()]++
	}
	for what, count := range map[string]map[keys.NodeID]int{"guard": guards, "middle": middles} {
		most := 0
		for _, id := range honest {
			most = max(most, count[id])
		}
		t.Logf("%s draws: liar %d, the busiest honest relay %d", what, count[liar], most)
		if count[liar] > 2*most {
			t.Errorf("the liar was drawn as %s %d times, more than twice the %d of the busiest honest relay", what, count[liar], most)
		}
	}
}
