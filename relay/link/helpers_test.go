package link

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"veil/directory/linkauth"
	"veil/onion"
	"veil/onion/keys"
)

// testTimeout bounds every wait in these tests, so a bug fails a test
// instead of hanging it. It detects a hang, never measures speed: a
// loaded two-core machine under the race detector must still pass.
const testTimeout = 2 * time.Minute

// checkLeaks fails the test if it ends with more goroutines than it began
// with. Call it first, so its cleanup runs after every other one.
func checkLeaks(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(testTimeout)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutines leaked: %d before, %d after\n%s",
					before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func newIdentity(t testing.TB) *keys.Identity {
	t.Helper()
	id, err := keys.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// server accepts TLS connections on 127.0.0.1 as a relay would (anonymous
// clients allowed), completes each handshake and hands the connection out.
// It stops at cleanup.
type server struct {
	id    *keys.Identity
	addr  string
	conns chan *tls.Conn
}

func startServer(t testing.TB, id *keys.Identity) *server {
	t.Helper()
	cfg, err := linkauth.ServerConfig(id, linkauth.AnonymousClients)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{id: id, addr: ln.Addr().String(), conns: make(chan *tls.Conn, 16)}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			c := tls.Server(WrapConn(raw), cfg)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			err = c.HandshakeContext(ctx)
			cancel()
			if err != nil {
				raw.Close()
				continue
			}
			select {
			case s.conns <- c:
			default:
				raw.Close()
			}
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		close(s.conns)
		for c := range s.conns {
			c.NetConn().Close()
		}
	})
	return s
}

// accept returns the next handshaken connection.
func (s *server) accept(t testing.TB) *tls.Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(testTimeout):
		t.Fatal("no connection accepted")
		return nil
	}
}

// dial connects to s, as an anonymous client if own is nil. Both ends
// are wrapped, as a relay's are.
func (s *server) dial(t testing.TB, own *keys.Identity) *tls.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := Dial(ctx, s.addr, s.id.ID(), own)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// closeAtCleanup closes l at cleanup and waits for it.
func closeAtCleanup(t testing.TB, l *Link) {
	t.Cleanup(func() {
		l.Close()
		select {
		case <-l.Done():
		case <-time.After(testTimeout):
			t.Errorf("link to %v did not close", l.RemoteAddr())
		}
	})
}

// establishPair dials s (as own, or anonymously if nil) and establishes a
// link on both ends at once. ini is the dialling side.
func establishPair(t testing.TB, s *server, own *keys.Identity, iniOpts, respOpts Options) (ini, resp *Link) {
	t.Helper()
	cc := s.dial(t, own)
	sc := s.accept(t)
	iniOpts.Initiator, respOpts.Initiator = true, false
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var respErr error
	var wg sync.WaitGroup
	wg.Go(func() { resp, respErr = Establish(ctx, sc, respOpts) })
	ini, err := Establish(ctx, cc, iniOpts)
	wg.Wait()
	if ini != nil {
		closeAtCleanup(t, ini)
	}
	if resp != nil {
		closeAtCleanup(t, resp)
	}
	if err != nil {
		t.Fatalf("initiator: %v", err)
	}
	if respErr != nil {
		t.Fatalf("responder: %v", respErr)
	}
	return ini, resp
}

// testHandler records LinkClosed calls and passes cells to cell, or
// releases them when cell is nil.
type testHandler struct {
	cell func(l *Link, c *onion.Cell)

	mu     sync.Mutex // guards the following fields
	closes int
	err    error

	closed chan struct{} // closed by the first LinkClosed
}

func newHandler(cell func(*Link, *onion.Cell)) *testHandler {
	return &testHandler{cell: cell, closed: make(chan struct{})}
}

func (h *testHandler) HandleCell(l *Link, c *onion.Cell) {
	if h.cell != nil {
		h.cell(l, c)
		return
	}
	Release(c)
}

func (h *testHandler) LinkClosed(l *Link, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closes++
	h.err = err
	if h.closes == 1 {
		close(h.closed)
	}
}

// waitClosed waits for LinkClosed and returns its error, failing the test
// if it is called more than once.
func (h *testHandler) waitClosed(t testing.TB) error {
	t.Helper()
	select {
	case <-h.closed:
	case <-time.After(testTimeout):
		t.Fatal("LinkClosed not called")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closes != 1 {
		t.Errorf("LinkClosed called %d times, want 1", h.closes)
	}
	return h.err
}

// relayCell returns a pooled RELAY cell on circID whose payload is a
// function of seq, so the receiver can check it bit for bit.
func relayCell(circID uint32, seq uint64) *onion.Cell {
	c := NewCell()
	c.CircID, c.Cmd = circID, onion.CellRelay
	fillPayload(&c.Payload, circID, seq)
	return c
}

func fillPayload(p *[onion.CellPayloadLen]byte, circID uint32, seq uint64) {
	x := seq*0x9e3779b97f4a7c15 ^ uint64(circID)
	for i := 0; i+8 <= len(p); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		for j := range 8 {
			p[i+j] = byte(x >> (8 * j))
		}
	}
	p[len(p)-3], p[len(p)-2], p[len(p)-1] = byte(seq), byte(seq>>8), byte(seq>>16)
}

// rawWrite writes c to a connection that is not a Link.
func rawWrite(conn io.Writer, c *onion.Cell) error {
	var b [onion.CellSize]byte
	if err := c.MarshalTo(b[:]); err != nil {
		return err
	}
	_, err := conn.Write(b[:])
	return err
}

// rawRead reads one cell from a connection that is not a Link.
func rawRead(conn io.Reader) (*onion.Cell, error) {
	var b [onion.CellSize]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return nil, err
	}
	c := new(onion.Cell)
	return c, onion.ParseCell(b[:], c)
}

func versionsCell(t testing.TB, vs ...uint16) *onion.Cell {
	t.Helper()
	c, err := onion.NewVersionsCell(vs)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rawVersions does a raw peer's half of the VERSIONS exchange.
func rawVersions(t testing.TB, conn *tls.Conn) {
	t.Helper()
	if err := rawWrite(conn, versionsCell(t, onion.ProtocolVersion)); err != nil {
		t.Fatal(err)
	}
	c, err := rawRead(conn)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cmd != onion.CellVersions {
		t.Fatalf("link sent %v first, want VERSIONS", c.Cmd)
	}
}
