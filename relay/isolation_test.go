package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"veil/directory/daemonmetrics/metricstest"
	"veil/onion/keys"
	"veil/relay/socks"
)

// circuitsCreated sums what every relay's /metrics says it created: each
// circuit of three hops counts three times.
func circuitsCreated(t *testing.T, n *testNetwork) int {
	return sumMetric(t, n, "veil_relay_circuits_created_total")
}

// pongsReceived sums the PINGs every relay answered.
func pongsReceived(t *testing.T, n *testNetwork) int {
	return sumMetric(t, n, "veil_relay_pings_answered_total")
}

// sumMetric sums one unlabelled counter over every relay's /metrics.
func sumMetric(t *testing.T, n *testNetwork, name string) int {
	t.Helper()
	sum := 0
	for _, rr := range n.relays {
		sum += int(metricstest.Get(t, rr.r.MetricsAddr().String())[name])
	}
	return sum
}

// echoServer echoes every connection until the test ends.
func echoServer(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				io.Copy(c, c)
			})
		}
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// TestStreamIsolation: streams with the same SOCKS credentials share one
// circuit, different credentials (user or password) get different
// circuits, and many streams opened, written and closed at once on one
// circuit all finish: the circuit's locks are always taken in one order.
func TestStreamIsolation(t *testing.T) {
	n := newTestNetwork(t, 1)
	want := map[keys.NodeID]bool{}
	for i := range 4 {
		want[n.startRelay(fmt.Sprint("relay", i), i%2 == 1).ID()] = true
	}
	cl, _ := testClient(t, n, want)
	echo := echoServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	connect := func(user, pass string) io.ReadWriteCloser {
		t.Helper()
		s, _, err := cl.Connect(ctx, socks.Request{Cmd: socks.CmdConnect, Addr: echo.Addr(), Port: echo.Port()}, socks.Credentials{Username: user, Password: pass})
		if err != nil {
			t.Fatalf("connect as %q/%q: %v", user, pass, err)
		}
		return s
	}
	circuits := func() int { return circuitsCreated(t, n) / 3 }

	base := circuits()
	a1, a2 := connect("alice", "x"), connect("alice", "x")
	if got := circuits() - base; got != 1 {
		t.Fatalf("two streams with the same credentials built %d circuits, want 1", got)
	}
	b := connect("bob", "x")
	a3 := connect("alice", "y")
	if got := circuits() - base; got != 3 {
		t.Fatalf("streams of alice/x, bob/x and alice/y built %d circuits, want 3", got)
	}
	for _, s := range []io.ReadWriteCloser{a1, a2, b, a3} {
		s.Close()
	}

	// Many streams on one circuit, opening while others write: a lock
	// order inversion between opening a stream and writing to another
	// hangs here.
	base = circuits()
	const workers, rounds, size = 16, 4, 256 << 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for range workers {
		wg.Go(func() {
			for range rounds {
				s, _, err := cl.Connect(ctx, socks.Request{Cmd: socks.CmdConnect, Addr: echo.Addr(), Port: echo.Port()}, socks.Credentials{Username: "carol"})
				if err != nil {
					errs <- err
					return
				}
				msg := make([]byte, size)
				rand.Read(msg)
				got := make(chan []byte, 1)
				go func() {
					b, _ := io.ReadAll(io.LimitReader(s, size))
					got <- b
				}()
				if _, err := s.Write(msg); err != nil {
					errs <- err
				}
				if b := <-got; !bytes.Equal(b, msg) {
					errs <- fmt.Errorf("echo gave %d bytes back of %d, or they differ", len(b), size)
				}
				s.Close()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("%d streams on one circuit hung", workers)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := circuits() - base; got != 1 {
		t.Fatalf("%d streams with the same credentials used %d circuits, want 1", workers*rounds, got)
	}
}

// TestQuietDestinationIsNotAHungHop: a destination that takes longer to
// answer than the client waits before asking its hops whether they are
// alive gets its answer on the same circuit: every hop answers the PING,
// so nothing is torn down.
func TestQuietDestinationIsNotAHungHop(t *testing.T) {
	n := newTestNetwork(t, 1)
	want := map[keys.NodeID]bool{}
	for i := range 4 {
		want[n.startRelay(fmt.Sprint("relay", i), i%2 == 1).ID()] = true
	}
	cl, _ := testClient(t, n, want)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const pause = 4 * time.Second // past silentAfter + pongTimeout
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 5)
		io.ReadFull(c, buf)
		time.Sleep(pause)
		c.Write(buf)
	}()
	dst := netip.MustParseAddrPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	base := circuitsCreated(t, n)
	s, _, err := cl.Connect(ctx, socks.Request{Cmd: socks.CmdConnect, Addr: dst.Addr(), Port: dst.Port()}, socks.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Write([]byte("hello"))
	got := make([]byte, 5)
	if _, err := io.ReadFull(s, got); err != nil || string(got) != "hello" {
		t.Fatalf("answer after a %v pause: %q, %v", pause, got, err)
	}
	if built := (circuitsCreated(t, n) - base) / 3; built != 1 {
		t.Fatalf("%d circuits built for one stream to a quiet destination, want 1", built)
	}
	if pongs := pongsReceived(t, n); pongs < 3 {
		t.Fatalf("relays answered %d PINGs, want at least one from each of the 3 hops: the pause must make the client ask", pongs)
	}
}
