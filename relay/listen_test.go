package relay

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"veil/conf"
	"veil/directory"
	"veil/onion/keys"
	"veil/relay/link"
)

// natForward plays a NAT's port forwarding: it accepts on a loopback
// address other than the relay's and copies each connection both ways to
// the relay's listener. It stops when the test ends.
type natForward struct {
	ln     net.Listener
	target atomic.Pointer[string]
	conns  atomic.Int64
	wg     sync.WaitGroup
}

func startNAT(t *testing.T, public string) *natForward {
	t.Helper()
	ln, err := net.Listen("tcp", public)
	if err != nil {
		t.Skipf("cannot listen on %s here: %v", public, err)
	}
	f := &natForward{ln: ln}
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns.Add(1)
			f.wg.Go(func() { f.forward(c) })
		}
	})
	return f
}

func (f *natForward) forward(c net.Conn) {
	defer c.Close()
	to := f.target.Load()
	if to == nil {
		return
	}
	up, err := net.Dial("tcp", *to)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(up, c)
		up.(*net.TCPConn).CloseWrite()
	}()
	io.Copy(c, up)
	c.(*net.TCPConn).CloseWrite()
	<-done
}

// TestRelayBehindNAT (issue 16 item 2): a relay listening on one address
// and advertising another, as behind NAT or in a container, is published
// at the advertised address, passes the seed's reachability check through
// it, and carries circuits that reach it there, from a client as a guard
// and from another relay as a middle.
func TestRelayBehindNAT(t *testing.T) {
	n := newTestNetwork(t, 1)
	nat := startNAT(t, "127.0.0.2:0")
	public := netip.MustParseAddrPort(nat.ln.Addr().String())
	n.relayEdit = func(c *conf.Relay) {
		if c.Nickname == "natted" {
			c.ORAdvertise = public.String()
		}
	}
	natted := n.startRelay("natted", false)
	bound := natted.orLn.Addr().String()
	nat.target.Store(&bound)
	if natted.ORAddr() != public {
		t.Fatalf("ORAddr() = %s, want the advertised %s", natted.ORAddr(), public)
	}
	other := n.startRelay("other", true)
	cl, v := testClient(t, n, map[keys.NodeID]bool{natted.ID(): true, other.ID(): true})
	e, _ := v.ByID(natted.ID())
	if e.Descriptor.ORAddr != public || e.Flags&directory.FlagRunning == 0 {
		t.Fatalf("consensus lists the relay at %s with flags %v, want %s and Running", e.Descriptor.ORAddr, e.Flags, public)
	}

	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	for _, names := range [][]string{{"natted", "other"}, {"other", "natted"}} {
		before := nat.conns.Load()
		c, err := cl.Build(ctx, hopsByName(t, n, v, names...))
		if err != nil {
			t.Fatalf("circuit %v: %v", names, err)
		}
		c.Close()
		if nat.conns.Load() == before {
			t.Fatalf("circuit %v was built without a connection through the advertised address", names)
		}
	}
}

// TestRelayListensOnIPv4AndIPv6 (issue 16 item 2): or_addr and or_addr_v6
// together give one OR port on both families; a link comes up on each.
func TestRelayListensOnIPv4AndIPv6(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		ln.Close()
	}
	n := newTestNetwork(t, 1)
	n.relayEdit = func(c *conf.Relay) { c.ORAddrV6 = "[::1]:0" }
	r := n.startRelay("dual", false)
	ml, ok := r.orLn.(*multiListener)
	if !ok || len(ml.lns) != 2 {
		t.Fatalf("OR listener %T, want two listeners in one", r.orLn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	for _, ln := range ml.lns {
		c, err := link.Dial(ctx, ln.Addr().String(), r.ID(), nil)
		if err != nil {
			t.Fatalf("link to %s: %v", ln.Addr(), err)
		}
		c.Close()
	}
}

// TestMultiListenerClose: Close ends Accept with net.ErrClosed and leaves
// no goroutine behind (Close waits for them).
func TestMultiListenerClose(t *testing.T) {
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newMultiListener(a, b)
	accepted := make(chan error, 1)
	go func() {
		for {
			c, err := m.Accept()
			if err != nil {
				accepted <- err
				return
			}
			c.Close()
		}
	}()
	for _, ln := range []net.Listener{a, b} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	m.Close()
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

// TestIPv4AndIPv6ORAddresses (issue 16 item 2): a relay with or_addr and
// or_addr_v6 publishes both in a version 2 descriptor; a client whose
// network does not reach the first (here: the IPv4 address of the entry
// points at a closed port) builds its circuit through the second, and
// another relay extends to it.
func TestIPv4AndIPv6ORAddresses(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		ln.Close()
	}
	n := newTestNetwork(t, 1)
	n.relayEdit = func(c *conf.Relay) {
		if c.Nickname == "dual" {
			c.ORAddrV6 = "[::1]:0"
		}
	}
	dual := n.startRelay("dual", false)
	other := n.startRelay("other", true)
	cl, v := testClient(t, n, map[keys.NodeID]bool{dual.ID(): true, other.ID(): true})
	e, _ := v.ByID(dual.ID())
	if !e.Descriptor.ORAddrV6.Addr().Is6() || e.Descriptor.ORAddrV6 != dual.orAddrV6 || e.Descriptor.Bytes()[0] != 2 {
		t.Fatalf("consensus lists OR addresses %v (descriptor version %d), want %s and %s in version 2",
			e.Descriptor.ORAddrs(), e.Descriptor.Bytes()[0], dual.ORAddr(), dual.orAddrV6)
	}

	// The IPv4 address, as a network without IPv4 sees it: nothing there.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := netip.MustParseAddrPort(closed.Addr().String())
	closed.Close()
	unreachable := *e.Descriptor
	unreachable.ORAddr = dead
	guard := e
	guard.Descriptor = &unreachable
	last, _ := v.ByID(other.ID())

	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	c, err := cl.Build(ctx, []directory.Entry{guard, last})
	if err != nil {
		t.Fatalf("circuit through the IPv6 address: %v", err)
	}
	c.Close()
	c, err = cl.Build(ctx, []directory.Entry{last, e})
	if err != nil {
		t.Fatalf("circuit extended to the dual-stack relay: %v", err)
	}
	c.Close()

	// Without the IPv6 address the same entry cannot be reached by a
	// client with no link to it yet: the circuit above did go through it.
	fresh, _ := testClient(t, n, map[keys.NodeID]bool{dual.ID(): true, other.ID(): true})
	v4only := unreachable
	v4only.ORAddrV6 = netip.AddrPort{}
	guard.Descriptor = &v4only
	if c, err := fresh.Build(ctx, []directory.Entry{guard, last}); err == nil {
		c.Close()
		t.Fatal("a circuit was built to a guard at a closed port")
	}
}
