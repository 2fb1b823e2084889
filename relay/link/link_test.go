package link

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"veil/onion"
)

func TestEstablishClientToRelay(t *testing.T) {
	checkLeaks(t)
	relay := newIdentity(t)
	s := startServer(t, relay)
	ini, resp := establishPair(t, s, nil, Options{Handler: newHandler(nil)}, Options{Handler: newHandler(nil)})

	if id, ok := ini.Peer(); !ok || id != relay.ID() {
		t.Errorf("client sees peer %v, %v; want %v", id.Short(), ok, relay.ID().Short())
	}
	if _, ok := resp.Peer(); ok {
		t.Error("relay sees an identity on an anonymous client's link")
	}
	for _, l := range []*Link{ini, resp} {
		if l.Version() != onion.ProtocolVersion {
			t.Errorf("version %d, want %d", l.Version(), onion.ProtocolVersion)
		}
		if st := l.Stats(); st.CellsIn != 1 || st.CellsOut != 1 || st.BytesOut != onion.CellSize {
			t.Errorf("stats after VERSIONS: %+v", st)
		}
	}
	if !ini.Initiator() || resp.Initiator() {
		t.Error("initiator flags wrong")
	}
}

func TestEstablishRelayToRelay(t *testing.T) {
	checkLeaks(t)
	r1, r2 := newIdentity(t), newIdentity(t)
	s := startServer(t, r1)
	ini, resp := establishPair(t, s, r2, Options{Handler: newHandler(nil)}, Options{Handler: newHandler(nil)})
	if id, ok := ini.Peer(); !ok || id != r1.ID() {
		t.Errorf("dialler sees %v, %v; want %v", id.Short(), ok, r1.ID().Short())
	}
	if id, ok := resp.Peer(); !ok || id != r2.ID() {
		t.Errorf("acceptor sees %v, %v; want %v", id.Short(), ok, r2.ID().Short())
	}
}

// TestEchoBothWays sends 10,000 cells each way at once; each end echoes the
// other's cells and checks its own come back in order and bit-exact. Each
// end keeps at most window cells unechoed, as circuit flow control would:
// without such a bound two echoing links can fill each other's queues and
// deadlock (see the package doc).
// bulkTimeout bounds the whole of 20,000 echoes: seconds alone, far more
// on a loaded two-core machine under the race detector.
const bulkTimeout = 5 * time.Minute

func TestEchoBothWays(t *testing.T) {
	checkLeaks(t)
	const n, window = 10000, 64
	s := startServer(t, newIdentity(t))

	type end struct {
		circ   atomic.Uint32 // set before any cell on it is sent
		credit chan struct{}
		next   atomic.Uint64 // next echo expected; written by the reader goroutine only
		got    chan error
		h      *testHandler
		l      *Link
	}
	ends := [2]*end{}
	for i := range ends {
		e := &end{credit: make(chan struct{}, window), got: make(chan error, 1)}
		e.h = newHandler(func(l *Link, c *onion.Cell) {
			circ := e.circ.Load()
			if c.CircID != circ {
				// The peer's cell: echo it; Send now owns it.
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				defer cancel()
				if err := l.Send(ctx, c); err != nil {
					l.CloseWithError(fmt.Errorf("echo: %w", err))
				}
				return
			}
			var want [onion.CellPayloadLen]byte
			next := e.next.Load()
			fillPayload(&want, circ, next)
			if c.Cmd != onion.CellRelay || c.Payload != want {
				select {
				case e.got <- fmt.Errorf("echo %d: cell differs", next):
				default:
				}
			}
			Release(c)
			e.next.Store(next + 1)
			<-e.credit
			if next+1 == n {
				e.got <- nil
			}
		})
		ends[i] = e
	}
	ends[0].l, ends[1].l = establishPair(t, s, nil, Options{Handler: ends[0].h}, Options{Handler: ends[1].h})

	for _, e := range ends {
		id, err := e.l.NewCircID()
		if err != nil {
			t.Fatal(err)
		}
		e.circ.Store(id)
	}
	if ends[0].circ.Load() == ends[1].circ.Load() {
		t.Fatal("both ends allocated the same circuit id")
	}
	var wg sync.WaitGroup
	for _, e := range ends {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), bulkTimeout)
			defer cancel()
			for seq := range uint64(n) {
				select {
				case e.credit <- struct{}{}:
				case <-ctx.Done():
					return
				}
				if err := e.l.Send(ctx, relayCell(e.circ.Load(), seq)); err != nil {
					t.Errorf("send %d: %v", seq, err)
					return
				}
			}
		})
	}
	for i, e := range ends {
		select {
		case err := <-e.got:
			if err != nil {
				t.Errorf("end %d: %v", i, err)
			}
		case <-e.l.Done():
			t.Fatalf("end %d: link closed: %v", i, e.l.Wait())
		case <-time.After(bulkTimeout):
			t.Fatalf("end %d: only %d echoes", i, e.next.Load())
		}
	}
	wg.Wait()
	for i, e := range ends {
		st := e.l.Stats()
		if st.CellsIn != 2*n+1 || st.CellsOut != 2*n+1 {
			t.Errorf("end %d stats %+v, want %d cells each way", i, st, 2*n+1)
		}
	}
}

// badPeer is what a misbehaving peer does after the TLS handshake.
type badPeer struct {
	name string
	do   func(t *testing.T, c *tls.Conn)
}

var badPeers = []badPeer{
	{"silent", func(t *testing.T, c *tls.Conn) {}},
	{"garbage", func(t *testing.T, c *tls.Conn) {
		var b [onion.CellSize]byte
		rand.Read(b[:])
		b[4] = 200 // an unknown command, whatever the rest
		c.Write(b[:])
	}},
	{"padding first", func(t *testing.T, c *tls.Conn) { rawWrite(c, onion.NewPaddingCell(0)) }},
	{"relay first", func(t *testing.T, c *tls.Conn) { rawWrite(c, relayCell(1, 1)) }},
	{"no common version", func(t *testing.T, c *tls.Conn) { rawWrite(c, versionsCell(t, 1, onion.ProtocolVersion+1)) }}, // 1 is no longer spoken
	{"half a cell", func(t *testing.T, c *tls.Conn) {
		var b [onion.CellSize / 2]byte
		c.Write(b[:])
		c.Close()
	}},
}

// TestEstablishFailures has a raw peer misbehave on either end; Establish
// fails, and a relay that accepted the bad peer goes on to accept a good one.
func TestEstablishFailures(t *testing.T) {
	for _, bp := range badPeers {
		t.Run(bp.name, func(t *testing.T) {
			checkLeaks(t)
			s := startServer(t, newIdentity(t))
			opts := Options{Handler: newHandler(nil), HandshakeTimeout: 300 * time.Millisecond}

			// The bad peer dials the relay.
			bad := s.dial(t, nil)
			defer bad.NetConn().Close()
			bp.do(t, bad)
			_, err := Establish(context.Background(), s.accept(t), opts)
			if err == nil {
				t.Fatal("relay: Establish succeeded")
			}
			t.Logf("relay: %v", err)
			if bp.name == "no common version" && !errors.Is(err, ErrNoCommonVersion) {
				t.Errorf("relay: %v, want ErrNoCommonVersion", err)
			}
			// The relay closed the bad connection...
			bad.SetReadDeadline(time.Now().Add(testTimeout))
			if _, err := io.Copy(io.Discard, bad); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Logf("bad peer's read: %v", err)
			}
			// ...and a good peer still gets a link.
			establishPair(t, s, nil, Options{Handler: newHandler(nil)}, Options{Handler: newHandler(nil)})

			// The relay misbehaves towards a dialling link.
			cc := s.dial(t, nil)
			sc := s.accept(t)
			defer sc.NetConn().Close()
			bp.do(t, sc)
			opts.Initiator = true
			if _, err := Establish(context.Background(), cc, opts); err == nil {
				t.Fatal("dialler: Establish succeeded")
			} else {
				t.Logf("dialler: %v", err)
			}
		})
	}
}

func TestEstablishContextCancelled(t *testing.T) {
	checkLeaks(t)
	s := startServer(t, newIdentity(t))
	cc := s.dial(t, nil)
	sc := s.accept(t)
	defer sc.NetConn().Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := Establish(ctx, cc, Options{Handler: newHandler(nil), Initiator: true})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Establish: %v, want context.Canceled", err)
	}
}

// TestBrokenPeerMidStream: after a good handshake the peer sends one good
// cell and then something a link must not accept. The link closes with an
// error, LinkClosed is called once, the good cell was delivered.
func TestBrokenPeerMidStream(t *testing.T) {
	cases := []struct {
		name string
		send func(c *tls.Conn)
		want error // nil: any error
	}{
		{"unknown command", func(c *tls.Conn) {
			var b [onion.CellSize]byte
			binary.BigEndian.PutUint32(b[:], 7)
			b[4] = 99
			c.Write(b[:])
		}, onion.ErrMalformed},
		{"circuit id 0", func(c *tls.Conn) {
			var b [onion.CellSize]byte
			b[4] = byte(onion.CellRelay)
			c.Write(b[:])
		}, onion.ErrMalformed},
		{"padding not zero", func(c *tls.Conn) {
			var b [onion.CellSize]byte
			b[100] = 1
			c.Write(b[:])
		}, onion.ErrMalformed},
		{"second VERSIONS", func(c *tls.Conn) {
			c.Write(mustMarshal(onion.NewVersionsCell([]uint16{onion.ProtocolVersion})))
		}, onion.ErrProtocol},
		{"truncated cell", func(c *tls.Conn) {
			c.Write(make([]byte, 100))
			c.Close()
		}, io.ErrUnexpectedEOF},
		{"clean close", func(c *tls.Conn) { c.Close() }, ErrPeerClosed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			s := startServer(t, newIdentity(t))
			var got atomic.Int32
			h := newHandler(func(l *Link, c *onion.Cell) {
				got.Add(1)
				Release(c)
			})
			cc := s.dial(t, nil)
			sc := s.accept(t)
			defer sc.NetConn().Close()
			errc := make(chan error, 1)
			go func() {
				l, err := Establish(context.Background(), cc, Options{Handler: h, Initiator: true})
				if err == nil {
					closeAtCleanup(t, l)
				}
				errc <- err
			}()
			rawVersions(t, sc)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			rawWrite(sc, relayCell(5, 1))
			tc.send(sc)
			err := h.waitClosed(t)
			t.Logf("LinkClosed: %v", err)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("LinkClosed(%v), want %v", err, tc.want)
			}
			if got.Load() != 1 {
				t.Errorf("%d cells delivered, want 1", got.Load())
			}
		})
	}
}

func mustMarshal(c *onion.Cell, err error) []byte {
	if err != nil {
		panic(err)
	}
	b := make([]byte, onion.CellSize)
	if err := c.MarshalTo(b); err != nil {
		panic(err)
	}
	return b
}

// TestSendBlocksWhenFull: the peer stops reading. Send blocks once the
// queue, the link's buffers and the socket's are full (bounded memory);
// cancelling its context or closing the link unblocks it; Close finishes
// within CloseTimeout though the peer never reads again.
func TestSendBlocksWhenFull(t *testing.T) {
	checkLeaks(t)
	const queue = 8
	s := startServer(t, newIdentity(t))
	cc := s.dial(t, nil)
	sc := s.accept(t) // the peer: does VERSIONS, then never reads
	defer sc.NetConn().Close()
	h := newHandler(nil)
	errc := make(chan *Link, 1)
	go func() {
		l, err := Establish(context.Background(), cc, Options{Handler: h, Initiator: true, SendQueue: queue})
		if err != nil {
			t.Error(err)
		}
		errc <- l
	}()
	rawVersions(t, sc)
	l := <-errc
	if l == nil {
		t.FailNow()
	}

	// Fill everything. Loopback socket buffers take a few MB at most.
	// Send is blocked once it waits 200 ms with the queue full; a wait
	// with room in the queue is a busy machine's delay, not the bound.
	const limit = 100000
	sent := 0
	for ; sent < limit; sent++ {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		c := relayCell(1, uint64(sent))
		err := l.Send(ctx, c)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			Release(c)
			if l.Stats().Queued == queue {
				break
			}
			sent--
			continue
		}
		if err != nil {
			t.Fatalf("send %d: %v", sent, err)
		}
	}
	t.Logf("Send blocked after %d cells (%d MiB)", sent, sent*onion.CellSize>>20)
	if sent == limit {
		t.Fatal("Send never blocked")
	}
	if st := l.Stats(); st.Queued != queue {
		t.Errorf("queue holds %d, want %d", st.Queued, queue)
	}
	if l.TrySend(relayCell(1, 0)) {
		t.Error("TrySend queued on a full queue")
	}

	// Cancelling the context unblocks Send.
	ctx, cancel := context.WithCancel(context.Background())
	sendErr := make(chan error, 1)
	go func() { sendErr <- l.Send(ctx, relayCell(1, 0)) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-sendErr; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Send: %v", err)
	}

	// Closing the link unblocks Send too, and Close is bounded.
	go func() { sendErr <- l.Send(context.Background(), relayCell(1, 0)) }()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	l.Close()
	if err := <-sendErr; !errors.Is(err, ErrClosed) {
		t.Errorf("Send on a closing link: %v", err)
	}
	if err := l.Wait(); err != nil {
		t.Errorf("Wait: %v", err)
	}
	// Bounded, not fast: CloseTimeout plus a loaded machine's delays.
	if d := time.Since(start); d > CloseTimeout+testTimeout {
		t.Errorf("Close took %v with a peer that does not read", d)
	}
	if err := h.waitClosed(t); err != nil {
		t.Errorf("LinkClosed(%v) after Close", err)
	}
	if err := l.Send(context.Background(), relayCell(1, 0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after close: %v", err)
	}
}

func TestCloseFromHandler(t *testing.T) {
	checkLeaks(t)
	s := startServer(t, newIdentity(t))
	sendErr := make(chan error, 1)
	h := newHandler(func(l *Link, c *onion.Cell) {
		l.Close()
		l.CloseWithError(errors.New("ignored: not the first close"))
		sendErr <- l.Send(context.Background(), c)
	})
	peerH := newHandler(nil)
	ini, resp := establishPair(t, s, nil, Options{Handler: peerH}, Options{Handler: h})
	if err := ini.Send(context.Background(), relayCell(mustCircID(t, ini), 0)); err != nil {
		t.Fatal(err)
	}
	if err := <-sendErr; !errors.Is(err, ErrClosed) {
		t.Errorf("Send from the handler after Close: %v", err)
	}
	if err := h.waitClosed(t); err != nil {
		t.Errorf("LinkClosed(%v), want nil after Close", err)
	}
	if err := resp.Wait(); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if err := peerH.waitClosed(t); !errors.Is(err, ErrPeerClosed) {
		t.Errorf("peer's LinkClosed(%v), want ErrPeerClosed", err)
	}
}

// mustCircID allocates a circuit ID on l.
func mustCircID(t testing.TB, l *Link) uint32 {
	t.Helper()
	id, err := l.NewCircID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestCloseWritesQueue: cells queued before Close reach the peer, in order,
// and the peer then sees a clean close.
func TestCloseWritesQueue(t *testing.T) {
	checkLeaks(t)
	const n = 200
	s := startServer(t, newIdentity(t))
	var got []uint64
	peerH := newHandler(func(l *Link, c *onion.Cell) {
		got = append(got, uint64(c.Payload[len(c.Payload)-3])|uint64(c.Payload[len(c.Payload)-2])<<8)
		Release(c)
	})
	ini, _ := establishPair(t, s, nil, Options{Handler: newHandler(nil), SendQueue: n}, Options{Handler: peerH})
	for i := range uint64(n) {
		if !ini.TrySend(relayCell(7, i)) {
			t.Fatalf("TrySend %d failed", i)
		}
	}
	ini.Close()
	if err := peerH.waitClosed(t); !errors.Is(err, ErrPeerClosed) {
		t.Errorf("peer's LinkClosed(%v), want ErrPeerClosed", err)
	}
	if len(got) != n {
		t.Fatalf("peer got %d cells, want %d", len(got), n)
	}
	for i, seq := range got {
		if seq != uint64(i) {
			t.Fatalf("cell %d has seq %d", i, seq)
		}
	}
}

func TestCloseConcurrent(t *testing.T) {
	checkLeaks(t)
	s := startServer(t, newIdentity(t))
	h := newHandler(nil)
	ini, _ := establishPair(t, s, nil, Options{Handler: h}, Options{Handler: newHandler(nil)})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if i%2 == 0 {
				ini.Close()
			} else {
				ini.CloseWithError(errors.New("racing"))
			}
			ini.Wait()
		})
	}
	wg.Wait()
	err := h.waitClosed(t)
	if err != ini.Wait() {
		t.Errorf("LinkClosed(%v) but Wait() = %v", err, ini.Wait())
	}
}

func TestIdleTimeout(t *testing.T) {
	checkLeaks(t)
	const idle = 500 * time.Millisecond
	s := startServer(t, newIdentity(t))
	h, peerH := newHandler(nil), newHandler(nil)
	ini, _ := establishPair(t, s, nil, Options{Handler: h, IdleTimeout: idle}, Options{Handler: peerH})

	// A circuit keeps the link open.
	id, err := ini.NewCircID()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ini.Done():
		t.Fatal("link with a circuit closed as idle")
	case <-time.After(3 * idle):
	}
	// So does traffic: a cell every idle/4, unless the machine stalls
	// this goroutine for longer than idle, and then the link may close
	// rightly.
	ini.ReleaseCircID(id)
	var lastSend time.Time
	var gap time.Duration
	for range 6 {
		if now := time.Now(); !lastSend.IsZero() {
			gap = max(gap, now.Sub(lastSend))
		}
		lastSend = time.Now()
		if err := ini.Send(context.Background(), onion.NewPaddingCell(0)); err != nil {
			if gap >= idle {
				t.Skipf("the machine stalled this test %v, longer than the idle timeout: %v", gap, err)
			}
			t.Fatal(err)
		}
		time.Sleep(idle / 4)
	}
	gap = max(gap, time.Since(lastSend))
	if ini.Stats().CellsOut < 7 {
		t.Fatal("padding not sent")
	}
	select {
	case <-ini.Done():
		if gap >= idle {
			t.Skipf("the machine stalled this test %v, longer than the idle timeout", gap)
		}
		t.Fatal("link with traffic closed as idle")
	default:
	}
	if err := h.waitClosed(t); !errors.Is(err, ErrIdle) {
		t.Errorf("LinkClosed(%v), want ErrIdle", err)
	}
	// Idle from the last padding on: never closed before idle has passed.
	// How soon after is the timer's business and the machine's load;
	// waitClosed bounds it as a hang.
	if d := time.Since(lastSend); d < idle {
		t.Errorf("idle link closed %v after the last cell, before the idle timeout %v", d, idle)
	}
	if err := peerH.waitClosed(t); !errors.Is(err, ErrPeerClosed) {
		t.Errorf("peer's LinkClosed(%v), want ErrPeerClosed", err)
	}
}

func TestOptionsChecked(t *testing.T) {
	checkLeaks(t)
	s := startServer(t, newIdentity(t))
	for _, o := range []Options{
		{},
		{Handler: newHandler(nil), SendQueue: -1},
		{Handler: newHandler(nil), SendQueue: MaxSendQueue + 1},
		{Handler: newHandler(nil), IdleTimeout: -time.Second},
	} {
		cc := s.dial(t, nil)
		sc := s.accept(t)
		if _, err := Establish(context.Background(), cc, o); err == nil {
			t.Errorf("Establish with %+v succeeded", o)
		}
		sc.NetConn().Close()
	}
}

func TestSendRefusesInvalidCells(t *testing.T) {
	checkLeaks(t)
	s := startServer(t, newIdentity(t))
	ini, _ := establishPair(t, s, nil, Options{Handler: newHandler(nil)}, Options{Handler: newHandler(nil)})
	v, _ := onion.NewVersionsCell([]uint16{1})
	for _, c := range []*onion.Cell{nil, v, {Cmd: onion.CellRelay}, {Cmd: onion.CellDestroy}} {
		if err := ini.Send(context.Background(), c); !errors.Is(err, ErrInvalidCell) {
			t.Errorf("Send(%+v): %v", c, err)
		}
		if ini.TrySend(c) {
			t.Errorf("TrySend(%+v) queued", c)
		}
	}
}

// TestForwardNeverWaitsOnASlowLink: a reader that forwards cells onto a
// link whose peer has stopped reading goes on reading its own link (the
// cells Forward could not queue are dropped here, where a relay would
// Enqueue them: TestEnqueueNeverWaits), and once the peer reads again,
// the cells that were queued arrive whole and in order.
func TestForwardNeverWaitsOnASlowLink(t *testing.T) {
	checkLeaks(t)
	const forwarded, local = 4000, 10 // 16 MB: more than the socket buffers and the queue hold

	unblock := make(chan struct{})
	var unblockOnce sync.Once
	release := func() { unblockOnce.Do(func() { close(unblock) }) }
	t.Cleanup(release)
	var mu sync.Mutex
	var queued []uint64 // sequence numbers Forward took, in order
	got := make(chan uint64, forwarded)
	sb := startServer(t, newIdentity(t))
	far := newHandler(func(_ *Link, c *onion.Cell) {
		<-unblock // a peer that does not read
		got <- binary.BigEndian.Uint64(c.Payload[:8])
		Release(c)
	})
	out, _ := establishPair(t, sb, nil, Options{Handler: newHandler(nil)}, Options{Handler: far})

	localSeen := make(chan struct{}, local)
	sa := startServer(t, newIdentity(t))
	relay := newHandler(func(l *Link, c *onion.Cell) {
		if c.CircID == 2 {
			localSeen <- struct{}{}
			Release(c)
			return
		}
		seq := binary.BigEndian.Uint64(c.Payload[:8])
		if out.Forward(l, c) {
			mu.Lock()
			queued = append(queued, seq)
			mu.Unlock()
		} else {
			Release(c)
		}
	})
	in, _ := establishPair(t, sa, nil, Options{Handler: newHandler(nil)}, Options{Handler: relay})

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for seq := range uint64(forwarded) {
		c := NewCell()
		c.CircID, c.Cmd = 1, onion.CellRelay
		binary.BigEndian.PutUint64(c.Payload[:8], seq)
		if err := in.Send(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for range local {
		c := NewCell()
		c.CircID, c.Cmd = 2, onion.CellRelay
		if err := in.Send(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for i := range local {
		select {
		case <-localSeen:
		case <-ctx.Done():
			t.Fatalf("the reader stalled behind the slow link: %d of %d local cells", i, local)
		}
	}
	mu.Lock()
	want := slices.Clone(queued)
	mu.Unlock()
	if len(want) == forwarded {
		t.Fatal("every cell was queued: the slow link never filled up")
	}
	release()
	for i, seq := range want {
		select {
		case s := <-got:
			if s != seq {
				t.Fatalf("cell %d: got sequence %d, want %d", i, s, seq)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d queued cells arrived", i, len(want))
		}
	}
}
