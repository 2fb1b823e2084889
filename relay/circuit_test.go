package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"veil/directory"
	"veil/directory/daemonmetrics/metricstest"
	"veil/onion"
	"veil/onion/keys"
	"veil/relay/client"
	"veil/relay/path"
	"veil/relay/socks"
	"veil/shard/store"
)

// target is a local HTTP server that circuits fetch from: /bytes/N returns
// N bytes from a fixed random block.
func target(t testing.TB) (netip.AddrPort, []byte) {
	block := make([]byte, 1<<20)
	rand.Read(block)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Path[len("/bytes/"):])
		w.Header().Set("Content-Length", strconv.Itoa(n))
		for n > 0 {
			k := min(n, len(block))
			w.Write(block[:k])
			n -= k
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return netip.MustParseAddrPort(ln.Addr().String()), block
}

// get fetches /bytes/n over rw with HTTP/1.0 and returns the body.
func get(t testing.TB, rw io.ReadWriter, n int) []byte {
	t.Helper()
	fmt.Fprintf(rw, "GET /bytes/%d HTTP/1.0\r\nHost: x\r\n\r\n", n)
	resp, err := http.ReadResponse(bufio.NewReader(rw), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func expected(block []byte, n int) []byte {
	var b bytes.Buffer
	for n > 0 {
		k := min(n, len(block))
		b.Write(block[:k])
		n -= k
	}
	return b.Bytes()
}

// testClient builds a circuit client on the network's consensus.
func testClient(t *testing.T, n *testNetwork, want map[keys.NodeID]bool) (*client.Client, *directory.View) {
	v := waitView(t, n.client(t), want)
	sel, err := path.NewSelector(path.Options{AllowSameSubnet: true})
	if err != nil {
		t.Fatal(err)
	}
	cl := client.New(client.Options{View: func() *directory.View { return v }, Paths: sel})
	t.Cleanup(cl.Close)
	return cl, v
}

func TestCircuitEndToEnd(t *testing.T) {
	n := newTestNetwork(t, 1)
	want := map[keys.NodeID]bool{}
	for i := 0; i < 4; i++ {
		want[n.startRelay(fmt.Sprint("relay", i), i%2 == 1).ID()] = true
	}
	cl, _ := testClient(t, n, want)
	dst, block := target(t)
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()

	s, reply, err := cl.Connect(ctx, socks.Request{Cmd: socks.CmdConnect, Addr: dst.Addr(), Port: dst.Port()}, socks.Credentials{})
	if err != nil {
		t.Fatalf("connect: %v (reply %#x)", err, reply.Code)
	}
	const size = 3<<20 + 17
	if got := get(t, s, size); !bytes.Equal(got, expected(block, size)) {
		t.Fatalf("body of %d bytes differs from what was served", len(got))
	}
	s.Close()

	// Every relay's /metrics counts what it carried, and nothing about
	// whom: the three relays of the path each created one circuit.
	created := 0
	for _, rr := range n.relays {
		got := metricstest.Get(t, rr.r.MetricsAddr().String())
		created += int(got["veil_relay_circuits_created_total"])
		if v, ok := got[`veil_relay_circuits_destroyed_total{reason="TAMPERED"}`]; !ok || v != 0 {
			t.Fatalf("metrics lack the destroy counters: %v", got)
		}
	}
	if created != 3 {
		t.Fatalf("relays report %d circuits created, want 3", created)
	}

	// No exit allows a private address: the client does not even try, and
	// answers "not allowed by ruleset".
	_, reply, err = cl.Connect(ctx, socks.Request{Cmd: socks.CmdConnect, Addr: netip.MustParseAddr("10.9.8.7"), Port: 80}, socks.Credentials{})
	if err == nil || reply.Code != socks.ReplyNotAllowed {
		t.Fatalf("private destination: err %v, reply %#x", err, reply.Code)
	}
	// A name is resolved at the exit, so the exit itself refuses it when
	// the address its name resolves to is not allowed (port 9 here).
	_, reply, err = cl.Connect(ctx, socks.Request{Cmd: socks.CmdConnect, Host: "localhost", Port: 9}, socks.Credentials{})
	if err == nil || reply.Code != socks.ReplyNotAllowed {
		t.Fatalf("refused by the exit: err %v, reply %#x", err, reply.Code)
	}
}

// TestTamperedCellKillsCircuit: a guard that flips one bit of the data a
// cell carries gets the circuit destroyed by the middle, which
// authenticates every bit (TAMPERED in its metrics); the changed data
// never reaches the destination, the client's stream ends with an error,
// and the relays keep running.
func TestTamperedCellKillsCircuit(t *testing.T) {
	n := newTestNetwork(t, 1)
	var armed atomic.Bool
	var flipped atomic.Int64
	// A cell's relay body begins at plaintext offset 64 (the filler and
	// the marker, onion/SPEC.md §5), its data 6 bytes later; each hop
	// before the target moves it one block back, so in what the guard
	// passes to the middle, the exit's data starts at 64+6-16. A flip
	// there changes carried data, not padding a later check would catch.
	const dataAt = (onion.MaxHops-1)*16 + onion.RecognizedLen + onion.RelayHeaderLen - 16
	tamper := func(c *onion.Cell) {
		if armed.Load() && flipped.Load() == 0 {
			c.Payload[dataAt+2] ^= 0x01
			flipped.Add(1)
		}
	}
	want := map[keys.NodeID]bool{}
	want[n.startRelayWith("guard", false, tamper).ID()] = true
	want[n.startRelay("middle", false).ID()] = true
	want[n.startRelay("exit", true).ID()] = true
	cl, v := testClient(t, n, want)

	got := make(chan []byte, 16)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		for {
			k, err := c.Read(buf)
			if k > 0 {
				got <- append([]byte(nil), buf[:k]...)
			}
			if err != nil {
				close(got)
				return
			}
		}
	}()
	dst := netip.MustParseAddrPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	circ, err := cl.Build(ctx, hopsByName(t, n, v, "guard", "middle", "exit"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := circ.Dial(ctx, onion.Begin{Addr: dst.Addr(), Port: dst.Port()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("clean")); err != nil {
		t.Fatal(err)
	}
	if b := <-got; string(b) != "clean" {
		t.Fatalf("destination got %q", b)
	}
	tampered := `veil_relay_circuits_destroyed_total{reason="TAMPERED"}`
	before := relayMetric(t, n.relays["middle"].r, tampered)
	armed.Store(true)
	s.Write([]byte("tampered"))
	// The stream ends with an error instead of hanging.
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 1))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read succeeded on a tampered circuit")
		}
	case <-time.After(hangTimeout):
		t.Fatal("the stream hung after a tampered cell")
	}
	if flipped.Load() == 0 {
		t.Fatal("no cell was tampered with")
	}
	for b := range got {
		t.Fatalf("the destination received %q after tampering", b)
	}
	if after := relayMetric(t, n.relays["middle"].r, tampered); after != before+1 {
		t.Fatalf("the middle destroyed %d circuits for TAMPERED, want %d", after-before, 1)
	}
	// The relays are still up: a new circuit works.
	armed.Store(false)
	flipped.Store(0)
	circ, err = cl.Build(ctx, hopsByName(t, n, v, "middle", "guard", "exit"))
	if err != nil {
		t.Fatalf("no new circuit after the tampered one: %v", err)
	}
	s2, err := circ.Dial(ctx, onion.Begin{Addr: dst.Addr(), Port: dst.Port()})
	if err != nil {
		t.Fatalf("no new stream after the tampered one: %v", err)
	}
	s2.Close()
}

// TestSpareCircuits: circuits are built ahead, a new stream takes one
// without waiting for handshakes, and the spare is replaced.
func TestSpareCircuits(t *testing.T) {
	n := newTestNetwork(t, 1)
	want := map[keys.NodeID]bool{}
	for i := 0; i < 4; i++ {
		want[n.startRelay(fmt.Sprint("relay", i), i%2 == 1).ID()] = true
	}
	cl, _ := testClient(t, n, want)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { cl.Maintain(ctx, 2); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, func() bool { return cl.Spares() == 2 }, "two spare circuits")

	dst, _ := target(t)
	s, _, err := cl.Connect(context.Background(), socks.Request{Cmd: socks.CmdConnect, Addr: dst.Addr(), Port: dst.Port()}, socks.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	waitFor(t, func() bool { return cl.Spares() == 2 }, "the spare to be replaced")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(hangTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMemoryCap: an exit whose destinations do not read fills its queues;
// past max_memory it destroys the circuits holding the oldest data and
// keeps serving new ones.
func TestMemoryCap(t *testing.T) {
	n := newTestNetwork(t, 1)
	n.maxMemory = 2 << 20
	want := map[keys.NodeID]bool{}
	for i := 0; i < 4; i++ {
		want[n.startRelay(fmt.Sprint("relay", i), i%2 == 1).ID()] = true
	}
	cl, _ := testClient(t, n, want)
	// A destination that accepts and never reads, with a small receive
	// buffer, so data piles up at the exit.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetReadBuffer(4096)
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	dst := netip.MustParseAddrPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	failed := make(chan error, 8)
	for i := range 8 {
		s, _, err := cl.Connect(ctx, socks.Request{Cmd: socks.CmdConnect, Addr: dst.Addr(), Port: dst.Port()}, socks.Credentials{Username: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			_, err := s.Write(make([]byte, 64<<20))
			failed <- err
		}()
	}
	// 8 streams can queue up to 8 MiB at the exit; the cap is 2 MiB.
	select {
	case err := <-failed:
		if err == nil {
			t.Fatal("a 64 MB write to a destination that never reads completed")
		}
	case <-time.After(hangTimeout):
		t.Fatal("no circuit was destroyed although the exit held more than its cap")
	}
	// The relays still serve new circuits.
	web, _ := target(t)
	s, _, err := cl.Connect(ctx, socks.Request{Cmd: socks.CmdConnect, Addr: web.Addr(), Port: web.Port()}, socks.Credentials{Username: "after"})
	if err != nil {
		t.Fatalf("after the cap: %v", err)
	}
	s.Close()
}

// TestStoreOverCircuit: a shard travels over a circuit whose last hop is a
// storage relay, as stream bytes, and comes back; a relay that keeps no
// shards refuses the storage stream.
func TestStoreOverCircuit(t *testing.T) {
	n := newTestNetwork(t, 1)
	want := map[keys.NodeID]bool{}
	for i := 0; i < 4; i++ {
		want[n.startRelay(fmt.Sprint("relay", i), i%2 == 1).ID()] = true
	}
	cl, v := testClient(t, n, want)
	sel, err := path.NewSelector(path.Options{AllowSameSubnet: true})
	if err != nil {
		t.Fatal(err)
	}
	var storage, plain directory.Entry
	for _, e := range v.Relays {
		if e.Flags&directory.FlagStorage != 0 {
			storage = e
		} else {
			plain = e
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	hops, err := sel.PathTo(v, storage)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cl.Build(ctx, hops)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.DialStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sc := store.NewClient(s)
	id := [store.IDLen]byte{0xab}
	shard := make([]byte, 1<<20+3)
	rand.Read(shard)
	if err := sc.Put(id, shard, time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := sc.Get(id)
	if err != nil || !bytes.Equal(got, shard) {
		t.Fatalf("get: %v", err)
	}
	if ok, err := sc.Has([store.IDLen]byte{1}); ok || err != nil {
		t.Fatalf("has: %v %v", ok, err)
	}
	s.Close()

	hops, err = sel.PathTo(v, plain)
	if err != nil {
		t.Fatal(err)
	}
	c, err = cl.Build(ctx, hops)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DialStore(ctx); err == nil {
		t.Fatal("a relay without storage opened a storage stream")
	}
}
