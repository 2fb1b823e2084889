package relay

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"veil/directory"
	"veil/onion"
	"veil/onion/keys"
)

// Attack tests: each plays a relay or client that breaks the protocol on
// purpose, through real relays on real sockets, and checks that the
// defence named in onion/SPEC.md holds.

// hopsByName returns the view's entries for the named relays, in order.
func hopsByName(t *testing.T, n *testNetwork, v *directory.View, names ...string) []directory.Entry {
	t.Helper()
	var hops []directory.Entry
	for _, name := range names {
		e, ok := v.ByID(n.relays[name].r.ID())
		if !ok {
			t.Fatalf("%s is not in the view", name)
		}
		hops = append(hops, e)
	}
	return hops
}

// TestAttackGuardCannotInjectStreamData: a guard starts a DATA message on
// the client's stream (a fragment flagged MORE) just before the exit's
// reply passes through it, hoping the exit's cell completes it so that
// the client reads bytes the guard chose. Only the exit speaks for a
// stream: the client destroys the circuit and reads nothing injected.
func TestAttackGuardCannotInjectStreamData(t *testing.T) { testInjection(t, 0) }

// TestAttackMiddleCannotInjectStreamData: the same from the middle.
func TestAttackMiddleCannotInjectStreamData(t *testing.T) { testInjection(t, 1) }

func testInjection(t *testing.T, position int) {
	const injected = "HTTP/1.1 302 Found\r\nLocation: http://tracker.test/\r\n\r\n"
	n := newTestNetwork(t, 1)
	var armed, fired atomic.Bool
	n.inject = func(int) []onion.RelayCell {
		if !armed.CompareAndSwap(true, false) {
			return nil
		}
		fired.Store(true)
		return []onion.RelayCell{{Cmd: onion.RelayData, Flags: onion.RelayFlagMore, StreamID: 1, Data: []byte(injected)}}
	}
	want := map[keys.NodeID]bool{}
	want[n.startRelay("evil", false).ID()] = true
	n.inject = nil
	want[n.startRelay("honest", false).ID()] = true
	want[n.startRelay("exit", true).ID()] = true
	cl, v := testClient(t, n, want)
	names := []string{"honest", "honest", "exit"}
	names[position] = "evil"
	if position == 0 {
		names[1] = "honest"
	}
	hops := hopsByName(t, n, v, names...)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reply := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.ReadFull(c, make([]byte, 3))
		<-reply
		c.Write([]byte("the real reply"))
		io.Copy(io.Discard, c)
	}()
	dst := netip.MustParseAddrPort(ln.Addr().String())

	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	c, err := cl.Build(ctx, hops)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Dial(ctx, onion.Begin{Addr: dst.Addr(), Port: dst.Port()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Write([]byte("GET")); err != nil {
		t.Fatal(err)
	}
	// The attacker fires on the next cell it passes back: the reply.
	armed.Store(true)
	close(reply)

	read := make(chan string, 1)
	go func() {
		// Until the real reply is in, or the stream fails.
		var b []byte
		buf := make([]byte, 4096)
		for !strings.Contains(string(b), "the real reply") {
			k, err := s.Read(buf)
			b = append(b, buf[:k]...)
			if err != nil {
				break
			}
		}
		read <- string(b)
	}()
	var got string
	select {
	case got = <-read:
	case <-time.After(hangTimeout):
		t.Fatal("the stream hung")
	}
	if !fired.Load() {
		t.Fatal("the attacker never injected")
	}
	if strings.Contains(got, "302") {
		t.Fatalf("the client read injected bytes: %q", got)
	}
	select {
	case <-c.Done():
	case <-time.After(hangTimeout):
		t.Fatalf("the circuit stayed up after hop %d spoke for the stream (read %q)", position, got)
	}
	t.Logf("circuit: %v", c.Err())
}
