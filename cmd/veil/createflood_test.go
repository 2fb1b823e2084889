package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"veil/directory"
	"veil/directory/daemonmetrics/metricstest"
	"veil/directory/dirclient"
	"veil/directory/linkauth"
	"veil/onion"
	"veil/onion/keys"
	"veil/relay/link"
	"veil/relay/testnet"
)

const (
	// floodWindow is how many CREATEs the flood keeps unanswered: enough
	// that the relay's reader never waits for it.
	floodWindow = 64
	// floodRefusals is how many refusals the flood must have had before
	// the honest client tries: by then the relay holds every circuit it
	// will give the flood, or, without per-peer limits, its table is full.
	floodRefusals = 500
	// honestCircuits is how many new circuits the honest client needs
	// under the flood, one per isolated stream: more than the one it
	// keeps built ahead (circuit_pool = 1 below), so it builds four
	// through the flooded relay while the flood goes on.
	honestCircuits = 5
	// floodHang detects a hang; it is not the property under test.
	floodHang = 4 * time.Minute
)

// TestAttackCreateFloodLeavesRoomForOthers (issue 13, item 3): one
// anonymous link floods a relay's OR port with CREATEs, each with a valid
// handshake, as fast as the relay answers, and keeps every circuit it is
// given. A client of its own, with the flooded relay as its only guard,
// still builds new circuits through it: the flood is refused with
// RESOURCELIMIT once it holds its share, and only the flood is. The
// relays are real `veil` processes; the flood comes from 127.0.0.2, the
// honest client from 127.0.0.1, two addresses as on the internet.
func TestAttackCreateFloodLeavesRoomForOthers(t *testing.T) {
	_, m := startTestnet(t, 4)
	web := webAddr(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), floodHang)
	defer cancel()
	victim := m.Relays[0]

	mine := clientWithGuards(t, m, victim.Name)
	mine.Socks = freePort(t)
	setConfigLine(t, mine.ClientConfig, "socks_addr", quote(mine.Socks))
	setConfigLine(t, mine.ClientConfig, "circuit_pool", "1")
	startProc(t, "proxy", "--config", mine.ClientConfig)
	// The proxy may still be starting: it works once before the flood.
	for attempts := 1; ; attempts++ {
		err := fetch(ctx, mine, web, 1000, "")
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no page through a client guarded by %s before any flood after %d attempts: %v", victim.Name, attempts, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	f := startCreateFlood(t, m, victim)
	for f.refused.Load() < floodRefusals {
		if ctx.Err() != nil || f.linkErr() != nil {
			t.Fatalf("flood: %d circuits held, %d refused before the hang timeout (link: %v)", f.held.Load(), f.refused.Load(), f.linkErr())
		}
		time.Sleep(50 * time.Millisecond)
	}
	held, refused := f.held.Load(), f.refused.Load()
	t.Logf("flood: %s holds %d circuits for it and has refused %d CREATEs", victim.Name, held, refused)

	// One attempt each, on a circuit of its own (SOCKS isolation by
	// user name): the client must get through while the flood goes on,
	// not after it stops.
	for i := range honestCircuits {
		if err := fetch(ctx, mine, web, 1000, fmt.Sprintf("honest%d", i)); err != nil {
			t.Fatalf("honest circuit %d through %s under the flood (%d circuits held by the flood): %v", i, victim.Name, f.held.Load(), err)
		}
	}
	if f.refused.Load() == refused {
		t.Fatal("the flood stopped while the honest client built its circuits")
	}
	t.Logf("%d honest circuits built; meanwhile the flood was refused %d more times and holds %d circuits",
		honestCircuits, f.refused.Load()-refused, f.held.Load())

	// The relay counts the refusals by the limit that made them.
	got := metric(t, victim.Metrics, `veil_relay_creates_refused_total{limit="peer_share"}`)
	if got < floodRefusals {
		t.Fatalf("%s counts %d CREATEs refused for a peer's share, want at least %d", victim.Name, got, floodRefusals)
	}
}

// metric returns one sample of a Prometheus /metrics page, by its name
// with labels as written (metricstest.Check).
func metric(t *testing.T, addr, name string) int64 {
	t.Helper()
	v, ok := metricstest.Get(t, addr)[name]
	if !ok {
		t.Fatalf("no %s in %s's metrics", name, addr)
	}
	return int64(v)
}

// createFlood is one anonymous link that sends CREATEs to a relay without
// end and never uses a circuit it gets. A handshake the relay refused
// before computing it (RESOURCELIMIT) is sent again, so the flood costs
// the test little CPU and goes as fast as the relay answers.
type createFlood struct {
	l       *link.Link
	relayID keys.NodeID
	onion   [32]byte
	slots   chan struct{} // one per CREATE unanswered, floodWindow at most

	held    atomic.Int64 // circuits the relay created for the flood and has not destroyed
	refused atomic.Int64 // CREATEs refused with RESOURCELIMIT

	mu      sync.Mutex // guards the fields below
	pending map[uint32][]byte
	spare   [][]byte // handshakes refused unread, to send again
	err     error    // why the link closed
}

// startCreateFlood dials the relay from 127.0.0.2 and floods it until the
// test ends; t's cleanup stops the sender and closes the link.
func startCreateFlood(t *testing.T, m testnet.Manifest, victim testnet.Proc) *createFlood {
	t.Helper()
	e := relayEntry(t, m, victim)
	id := e.Descriptor.NodeID()
	f := &createFlood{relayID: id, onion: e.Descriptor.OnionCert.OnionKey, slots: make(chan struct{}, floodWindow), pending: map[uint32][]byte{}}
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	raw, err := d.DialContext(ctx, "tcp", victim.ORAddr)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := linkauth.Client(ctx, link.WrapConn(raw), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.l, err = link.Establish(ctx, tc, link.Options{Handler: f, Initiator: true})
	if err != nil {
		t.Fatal(err)
	}
	floodCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { f.send(floodCtx) })
	t.Cleanup(func() {
		stop()
		wg.Wait()
		f.l.Close()
		f.l.Wait()
	})
	return f
}

// relayEntry returns the relay's entry in the consensus, with its node ID
// and current onion key.
func relayEntry(t *testing.T, m testnet.Manifest, r testnet.Proc) directory.Entry {
	t.Helper()
	seedID, err := keys.ParseNodeID(m.Seeds[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dirclient.New(dirclient.Options{Seeds: []dirclient.Seed{{Name: "seed0", URL: "http://" + m.Seeds[0].DirAddr, ID: seedID}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	v, err := c.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range v.Relays {
		if e.Descriptor.ORAddr.String() == r.ORAddr {
			return e
		}
	}
	t.Fatalf("%s (%s) is not in the consensus", r.Name, r.ORAddr)
	return directory.Entry{}
}

// send sends CREATEs, floodWindow unanswered at most, until ctx ends or
// the link closes.
func (f *createFlood) send(ctx context.Context) {
	for {
		select {
		case f.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		hs, err := f.handshake()
		if err != nil {
			f.fail(err)
			return
		}
		id, err := f.l.NewCircID()
		if err != nil {
			f.fail(err)
			return
		}
		f.mu.Lock()
		f.pending[id] = hs
		f.mu.Unlock()
		c, err := onion.NewCreateCell(id, hs)
		if err == nil {
			err = f.l.Send(ctx, c)
		}
		if err != nil {
			f.fail(err)
			return
		}
	}
}

// handshake returns a refused handshake to send again, or a fresh one.
func (f *createFlood) handshake() ([]byte, error) {
	f.mu.Lock()
	if n := len(f.spare); n > 0 {
		hs := f.spare[n-1]
		f.spare = f.spare[:n-1]
		f.mu.Unlock()
		return hs, nil
	}
	f.mu.Unlock()
	h, err := onion.NewClientHandshake(f.relayID, f.onion, nil)
	if err != nil {
		return nil, err
	}
	defer h.Clear()
	return bytes.Clone(h.Request()), nil
}

// HandleCell counts the relay's answers.
func (f *createFlood) HandleCell(l *link.Link, c *onion.Cell) {
	defer link.Release(c)
	f.mu.Lock()
	hs, answered := f.pending[c.CircID]
	delete(f.pending, c.CircID)
	f.mu.Unlock()
	switch c.Cmd {
	case onion.CellCreated:
		f.held.Add(1)
	case onion.CellDestroy:
		l.ReleaseCircID(c.CircID)
		if !answered {
			f.held.Add(-1) // a held circuit destroyed later
			return
		}
		if reason, _ := c.DestroyReason(); reason == onion.DestroyResourceLimit {
			f.refused.Add(1)
			f.mu.Lock()
			f.spare = append(f.spare, hs)
			f.mu.Unlock()
		}
	default:
		return
	}
	if answered {
		<-f.slots
	}
}

// LinkClosed records why the link closed.
func (f *createFlood) LinkClosed(_ *link.Link, err error) { f.fail(fmt.Errorf("link closed: %v", err)) }

func (f *createFlood) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *createFlood) linkErr() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}
