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
	"veil/directory/daemonmetrics/metricstest"
	"veil/onion"
	"veil/onion/keys"
	"veil/relay/client"
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

// relayMetric reads one sample of r's /metrics, by its full name with
// labels; a sample that is missing fails the test.
func relayMetric(t *testing.T, r *Relay, sample string) int {
	t.Helper()
	v, ok := metricstest.Get(t, r.MetricsAddr().String())[sample]
	if !ok {
		t.Fatalf("no %s in the metrics", sample)
	}
	return int(v)
}

// echoTarget is a TCP server on 127.0.0.1 that echoes what it reads.
func echoTarget(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
				io.Copy(c, c)
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// echoStream starts a guard, a middle and an exit on n, the guard and the
// middle tampering with what they forward as guardHook and middleHook say
// (nil: honest), builds a circuit guard-middle-exit and opens a stream
// through it to an echo server.
func echoStream(t *testing.T, n *testNetwork, guardHook, middleHook func(*onion.Cell)) (*client.Circuit, io.ReadWriteCloser) {
	t.Helper()
	want := map[keys.NodeID]bool{}
	want[n.startRelayWith("guard", false, guardHook).ID()] = true
	want[n.startRelayWith("middle", false, middleHook).ID()] = true
	want[n.startRelay("exit", true).ID()] = true
	cl, v := testClient(t, n, want)
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	c, err := cl.Build(ctx, hopsByName(t, n, v, "guard", "middle", "exit"))
	if err != nil {
		t.Fatal(err)
	}
	dst := echoTarget(t)
	s, err := c.Dial(ctx, onion.Begin{Addr: dst.Addr(), Port: dst.Port()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return c, s
}

// echoRoundTrips sends k one-byte messages through s and reads each back.
func echoRoundTrips(t *testing.T, s io.ReadWriter, k int) {
	t.Helper()
	for range k {
		if _, err := s.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAttackCommandFlipKillsCircuit: a guard turns a RELAY cell it
// forwards into RELAY_EARLY (and another circuit's RELAY_EARLY into
// RELAY), the marks a colluding exit could read as a tag. The command is
// every layer's associated data, so the middle refuses the cell as
// tampered with, the circuit dies, and the exit never sees the mark.
func TestAttackCommandFlipKillsCircuit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to onion.CellCmd
	}{
		{"RELAY to RELAY_EARLY", onion.CellRelay, onion.CellRelayEarly},
		{"RELAY_EARLY to RELAY", onion.CellRelayEarly, onion.CellRelay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNetwork(t, 1)
			var armed atomic.Bool
			var flipped atomic.Int64
			flip := func(c *onion.Cell) {
				if armed.Load() && c.Cmd == tc.from && flipped.Load() == 0 {
					c.Cmd = tc.to
					flipped.Add(1)
				}
			}
			c, s := echoStream(t, n, flip, nil)
			if tc.from == onion.CellRelay {
				// Spend the circuit's RELAY_EARLY cells first.
				echoRoundTrips(t, s, onion.MaxRelayEarly)
			}
			tampered := `veil_relay_circuits_destroyed_total{reason="TAMPERED"}`
			before := relayMetric(t, n.relays["middle"].r, tampered)
			armed.Store(true)
			s.Write([]byte("marked"))
			select {
			case <-c.Done():
			case <-time.After(hangTimeout):
				t.Fatal("the circuit survived a flipped command")
			}
			if flipped.Load() != 1 {
				t.Fatalf("%d cells flipped", flipped.Load())
			}
			if got := relayMetric(t, n.relays["middle"].r, tampered); got != before+1 {
				t.Fatalf("the middle destroyed %d circuits for TAMPERED, want %d", got, before+1)
			}
			if got := relayMetric(t, n.relays["exit"].r, tampered); got != 0 {
				t.Fatalf("the exit was told TAMPERED (%d)", got)
			}
		})
	}
}

// TestExitReceivesRelayEarly: the client's first cells are RELAY_EARLY
// whatever they carry, so an exit gets some too, and a RELAY_EARLY cell
// tells no hop that the circuit goes on beyond it (onion/SPEC.md §7.6).
func TestExitReceivesRelayEarly(t *testing.T) {
	n := newTestNetwork(t, 1)
	var early atomic.Int64
	count := func(c *onion.Cell) {
		if c.Cmd == onion.CellRelayEarly {
			early.Add(1)
		}
	}
	_, s := echoStream(t, n, nil, count)
	echoRoundTrips(t, s, 2*onion.MaxRelayEarly)
	// The guard took one (EXTEND to the middle), the middle one (EXTEND
	// to the exit); the rest passed the middle to the exit.
	// (A PING from the circuit's watcher on a slow machine may take one
	// of the others.)
	if got := early.Load(); got < 1 || got > onion.MaxRelayEarly-2 {
		t.Fatalf("the exit got %d RELAY_EARLY cells, want 1..%d", got, onion.MaxRelayEarly-2)
	}
}
