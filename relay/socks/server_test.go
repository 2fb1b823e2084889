package socks

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"veil/onion"
)

// The client side of every test is written by hand, byte by byte.

// checkNoLeaks fails the test if goroutines started during it are still
// running shortly after it (and its cleanups, registered later) end.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Fatalf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// startEcho runs a TCP echo server on 127.0.0.1 until the test ends. It
// echoes until the client half-closes, then closes.
func startEcho(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				io.Copy(c, c)
				c.Close()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// echoConnector dials the echo server whatever the request says, and
// records what it was asked. It never resolves anything.
type echoConnector struct {
	echo string
	fail map[string]byte // Host → reply code of a failed Connect
	bind netip.AddrPort

	mu    sync.Mutex // guards the following fields
	reqs  []Request
	creds []Credentials
}

func (e *echoConnector) Connect(ctx context.Context, req Request, cred Credentials) (io.ReadWriteCloser, Reply, error) {
	e.mu.Lock()
	e.reqs = append(e.reqs, req)
	e.creds = append(e.creds, cred)
	e.mu.Unlock()
	if code, ok := e.fail[req.Host]; ok {
		return nil, Reply{Code: code}, errors.New("test: refused")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", e.echo)
	if err != nil {
		return nil, Reply{Code: ReplyGeneralFailure}, err
	}
	return c, Reply{Bind: e.bind}, nil
}

func (e *echoConnector) seen() ([]Request, []Credentials) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Request(nil), e.reqs...), append([]Credentials(nil), e.creds...)
}

// startServer serves opts on 127.0.0.1 until the test ends, and checks
// that Serve returns nil once stopped. stop may be called early.
func startServer(t *testing.T, opts Options) (addr string, stop func()) {
	t.Helper()
	s, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Serve did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// setup starts an echo server, a connector and a SOCKS server.
func setup(t *testing.T, mod func(*Options)) (string, *echoConnector) {
	t.Helper()
	checkNoLeaks(t)
	ec := &echoConnector{echo: startEcho(t)}
	opts := DefaultOptions()
	opts.Connector = ec
	opts.HandshakeTimeout = 5 * time.Second
	if mod != nil {
		mod(&opts)
	}
	addr, _ := startServer(t, opts)
	return addr, ec
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func write(t *testing.T, c net.Conn, b ...byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func expect(t *testing.T, c net.Conn, want ...byte) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading %x: %v (got %x)", want, err, got)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}

// expectClosed demands that the server closes c without sending more.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	var b [1]byte
	n, err := c.Read(b[:])
	if n != 0 || err == nil {
		t.Fatalf("read %d bytes, %v; want the connection closed", n, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open: %v", err)
	}
}

// readReply reads a reply by hand: header, then an IPv4 or IPv6 address.
func readReply(t *testing.T, c net.Conn) (code byte, bind netip.AddrPort) {
	t.Helper()
	h := make([]byte, 4)
	if _, err := io.ReadFull(c, h); err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	if h[0] != 5 || h[2] != 0 {
		t.Fatalf("reply header %x", h)
	}
	n := 4
	if h[3] == 4 {
		n = 16
	} else if h[3] != 1 {
		t.Fatalf("reply address type %d", h[3])
	}
	rest := make([]byte, n+2)
	if _, err := io.ReadFull(c, rest); err != nil {
		t.Fatalf("reading reply address: %v", err)
	}
	a, _ := netip.AddrFromSlice(rest[:n])
	return h[1], netip.AddrPortFrom(a, uint16(rest[n])<<8|uint16(rest[n+1]))
}

func noAuth(t *testing.T, c net.Conn) {
	t.Helper()
	write(t, c, 0x05, 0x01, 0x00)
	expect(t, c, 0x05, 0x00)
}

func ipv4Req(cmd byte, a [4]byte, port uint16) []byte {
	return []byte{0x05, cmd, 0x00, 0x01, a[0], a[1], a[2], a[3], byte(port >> 8), byte(port)}
}

func domainReq(h string, port uint16) []byte {
	b := append([]byte{0x05, 0x01, 0x00, 0x03, byte(len(h))}, h...)
	return append(b, byte(port>>8), byte(port))
}

// echoes checks that bytes go through to the echo server and back.
func echoes(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	write(t, c, []byte(msg)...)
	expect(t, c, []byte(msg)...)
}

func TestConnect(t *testing.T) {
	addr, ec := setup(t, nil)
	v6 := netip.MustParseAddr("2001:db8::7").As16()
	for _, tc := range []struct {
		name string
		req  []byte
		want Request
	}{
		{"ipv4", ipv4Req(CmdConnect, [4]byte{192, 0, 2, 1}, 80),
			Request{Cmd: CmdConnect, Addr: netip.MustParseAddr("192.0.2.1"), Port: 80}},
		{"ipv6", append(append([]byte{0x05, 0x01, 0x00, 0x04}, v6[:]...), 0x01, 0xbb),
			Request{Cmd: CmdConnect, Addr: netip.MustParseAddr("2001:db8::7"), Port: 443}},
		// A name that no resolver knows: were it resolved here, it would fail.
		{"domain", domainReq("veil-test.invalid", 8080),
			Request{Cmd: CmdConnect, Host: "veil-test.invalid", Port: 8080}},
		{"ipv4 literal domain", domainReq("127.0.0.1", 22),
			Request{Cmd: CmdConnect, Addr: netip.MustParseAddr("127.0.0.1"), Port: 22}},
		{"ipv6 literal domain", domainReq("::1", 22),
			Request{Cmd: CmdConnect, Addr: netip.MustParseAddr("::1"), Port: 22}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			noAuth(t, c)
			write(t, c, tc.req...)
			if code, bind := readReply(t, c); code != ReplySucceeded || bind != netip.MustParseAddrPort("0.0.0.0:0") {
				t.Fatalf("reply %#02x %v, want success 0.0.0.0:0", code, bind)
			}
			echoes(t, c, "hello through "+tc.name)
			reqs, _ := ec.seen()
			if got := reqs[len(reqs)-1]; got != tc.want {
				t.Errorf("connector saw %+v, want %+v", got, tc.want)
			}
		})
	}
}

// An optimistic client sends greeting, request and data in one write; the
// server reads exactly, so nothing is lost between the steps.
func TestPipelined(t *testing.T) {
	addr, _ := setup(t, nil)
	c := dial(t, addr)
	b := append([]byte{0x05, 0x01, 0x00}, domainReq("example.com", 80)...)
	write(t, c, append(b, "early data"...)...)
	expect(t, c, 0x05, 0x00)
	if code, _ := readReply(t, c); code != ReplySucceeded {
		t.Fatalf("reply %#02x", code)
	}
	expect(t, c, []byte("early data")...)
}

// A client's half-close reaches the far side through the stream's
// CloseWrite, and a large transfer arrives intact.
func TestHalfCloseAndBulk(t *testing.T) {
	addr, _ := setup(t, nil)
	c := dial(t, addr)
	noAuth(t, c)
	write(t, c, ipv4Req(CmdConnect, [4]byte{127, 0, 0, 1}, 9)...)
	if code, _ := readReply(t, c); code != ReplySucceeded {
		t.Fatalf("reply %#02x", code)
	}
	data := make([]byte, 4<<20)
	rand.Read(data)
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c) // ends only if the EOF went round
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d of %d bytes back, %v", len(got), len(data), err)
	}
}

func TestBindReported(t *testing.T) {
	addr, ec := setup(t, nil)
	ec.bind = netip.MustParseAddrPort("[2001:db8::2]:4242")
	c := dial(t, addr)
	noAuth(t, c)
	write(t, c, ipv4Req(CmdConnect, [4]byte{10, 0, 0, 1}, 80)...)
	if code, bind := readReply(t, c); code != ReplySucceeded || bind != ec.bind {
		t.Fatalf("reply %#02x %v, want success %v", code, bind, ec.bind)
	}
}

func TestUserPass(t *testing.T) {
	addr, ec := setup(t, nil)
	for _, cred := range []Credentials{{"alice", "one"}, {"bob", "two"}, {"carol", ""}} {
		c := dial(t, addr)
		write(t, c, 0x05, 0x02, 0x00, 0x02) // offers both: username/password wins
		expect(t, c, 0x05, 0x02)
		b := append([]byte{0x01, byte(len(cred.Username))}, cred.Username...)
		b = append(append(b, byte(len(cred.Password))), cred.Password...)
		write(t, c, b...)
		expect(t, c, 0x01, 0x00)
		write(t, c, domainReq("example.org", 443)...)
		if code, _ := readReply(t, c); code != ReplySucceeded {
			t.Fatalf("reply %#02x", code)
		}
		echoes(t, c, "hi "+cred.Username)
		_, creds := ec.seen()
		if got := creds[len(creds)-1]; got != cred {
			t.Errorf("connector saw %+v, want %+v", got, cred)
		}
	}
	// No-auth passes empty credentials.
	c := dial(t, addr)
	noAuth(t, c)
	write(t, c, domainReq("example.org", 443)...)
	if code, _ := readReply(t, c); code != ReplySucceeded {
		t.Fatalf("reply %#02x", code)
	}
	if _, creds := ec.seen(); creds[len(creds)-1] != (Credentials{}) {
		t.Errorf("no-auth credentials %+v", creds[len(creds)-1])
	}
}

func TestUserPassRefused(t *testing.T) {
	addr, ec := setup(t, nil)
	for name, b := range map[string][]byte{
		"socks version":  {0x05, 0x01, 'a', 0x01, 'b'},
		"version 2":      {0x02, 0x01, 'a', 0x01, 'b'},
		"empty username": {0x01, 0x00, 0x01, 'b'},
	} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, addr)
			write(t, c, 0x05, 0x01, 0x02)
			expect(t, c, 0x05, 0x02)
			write(t, c, b...)
			expect(t, c, 0x01, UserPassFailure)
			expectClosed(t, c)
		})
	}
	if reqs, _ := ec.seen(); len(reqs) != 0 {
		t.Errorf("connector called %d times", len(reqs))
	}
}

func TestMethodSelection(t *testing.T) {
	for _, tc := range []struct {
		name             string
		noAuth, userPass bool
		offer            []byte
		want             byte
	}{
		{"gssapi only", true, true, []byte{0x01}, MethodNoAcceptable},
		{"no-auth when off", false, true, []byte{0x00}, MethodNoAcceptable},
		{"userpass when off", true, false, []byte{0x02}, MethodNoAcceptable},
		{"no-auth when userpass off", true, false, []byte{0x02, 0x00}, MethodNoAuth},
		{"userpass only", false, true, []byte{0x00, 0x02}, MethodUserPass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := setup(t, func(o *Options) { o.AllowNoAuth, o.AllowUserPass = tc.noAuth, tc.userPass })
			c := dial(t, addr)
			write(t, c, append([]byte{0x05, byte(len(tc.offer))}, tc.offer...)...)
			expect(t, c, 0x05, tc.want)
			if tc.want == MethodNoAcceptable {
				expectClosed(t, c)
			}
		})
	}
}

// Requests refused before the Connector is asked, with their replies.
func TestRequestRefused(t *testing.T) {
	addr, ec := setup(t, nil)
	v6 := netip.IPv6Loopback().As16()
	for _, tc := range []struct {
		name string
		req  []byte
		code byte
	}{
		{"bind", ipv4Req(CmdBind, [4]byte{127, 0, 0, 1}, 21), ReplyCommandNotSupported},
		{"udp associate", ipv4Req(CmdUDPAssociate, [4]byte{0, 0, 0, 0}, 0), ReplyCommandNotSupported},
		{"udp associate ipv6", append(append([]byte{0x05, 0x03, 0x00, 0x04}, v6[:]...), 0, 53), ReplyCommandNotSupported},
		{"unknown command", ipv4Req(0x09, [4]byte{127, 0, 0, 1}, 80), ReplyCommandNotSupported},
		{"address type 2", []byte{0x05, 0x01, 0x00, 0x02, 127, 0, 0, 1, 0, 80}, ReplyAddrTypeNotSupported},
		{"address type 5", []byte{0x05, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5, 6, 7, 8}, ReplyAddrTypeNotSupported},
		{"reserved byte", []byte{0x05, 0x01, 0x07, 0x01, 127, 0, 0, 1, 0, 80}, ReplyGeneralFailure},
		{"port 0", ipv4Req(CmdConnect, [4]byte{127, 0, 0, 1}, 0), ReplyGeneralFailure},
		{"domain port 0", domainReq("example.com", 0), ReplyGeneralFailure},
		{"domain space", domainReq("example.com evil", 80), ReplyGeneralFailure},
		{"domain NUL", domainReq("example.com\x00.evil", 80), ReplyGeneralFailure},
		{"empty domain", []byte{0x05, 0x01, 0x00, 0x03, 0x00, 0, 80}, ReplyGeneralFailure},
		{"domain in disguise", domainReq("0x7f.1", 80), ReplyGeneralFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			noAuth(t, c)
			write(t, c, tc.req...)
			if code, _ := readReply(t, c); code != tc.code {
				t.Fatalf("reply %#02x, want %#02x", code, tc.code)
			}
			expectClosed(t, c)
		})
	}
	if reqs, _ := ec.seen(); len(reqs) != 0 {
		t.Errorf("connector called for %+v", reqs)
	}
}

// A wrong version byte gets no reply at all.
func TestWrongVersionClosed(t *testing.T) {
	addr, _ := setup(t, nil)
	c := dial(t, addr)
	write(t, c, 0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0) // SOCKS4
	expectClosed(t, c)
	c2 := dial(t, addr)
	noAuth(t, c2)
	b := ipv4Req(CmdConnect, [4]byte{127, 0, 0, 1}, 80)
	b[0] = 0x04
	write(t, c2, b...)
	expectClosed(t, c2)
}

func TestConnectorErrors(t *testing.T) {
	addr, ec := setup(t, nil)
	ec.fail = map[string]byte{
		"policy.test":  onion.EndExitPolicy.SOCKSReply(),
		"refused.test": onion.EndConnectRefused.SOCKSReply(),
		"noname.test":  onion.EndResolveFailed.SOCKSReply(),
		"net.test":     ReplyNetworkUnreachable,
		"ttl.test":     ReplyTTLExpired,
		"nocode.test":  ReplySucceeded, // an error with no code: general failure
	}
	want := map[string]byte{
		"policy.test":  ReplyNotAllowed,
		"refused.test": ReplyConnectionRefused,
		"noname.test":  ReplyHostUnreachable,
		"net.test":     ReplyNetworkUnreachable,
		"ttl.test":     ReplyTTLExpired,
		"nocode.test":  ReplyGeneralFailure,
	}
	for host, code := range want {
		t.Run(host, func(t *testing.T) {
			c := dial(t, addr)
			noAuth(t, c)
			write(t, c, domainReq(host, 80)...)
			if got, bind := readReply(t, c); got != code || bind != netip.MustParseAddrPort("0.0.0.0:0") {
				t.Fatalf("reply %#02x %v, want %#02x 0.0.0.0:0", got, bind, code)
			}
			expectClosed(t, c)
		})
	}
}

// Silent, truncated and slow clients are dropped after HandshakeTimeout,
// and meanwhile another client is served.
func TestHandshakeTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	addr, _ := setup(t, func(o *Options) { o.HandshakeTimeout = timeout })
	stalls := map[string][]byte{
		"silent":             nil,
		"truncated greeting": {0x05, 0x02, 0x00},
		"truncated request":  {0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, 0x0b, 'e', 'x'},
		"truncated userpass": {0x05, 0x01, 0x02, 0x01, 0x05, 'a'},
	}
	start := time.Now()
	var conns []net.Conn
	for _, b := range stalls {
		c := dial(t, addr)
		if b != nil {
			write(t, c, b...)
		}
		conns = append(conns, c)
	}
	// Served while the others stall.
	c := dial(t, addr)
	noAuth(t, c)
	write(t, c, domainReq("example.com", 80)...)
	if code, _ := readReply(t, c); code != ReplySucceeded {
		t.Fatalf("reply %#02x", code)
	}
	echoes(t, c, "not blocked")
	if d := time.Since(start); d >= timeout {
		t.Errorf("a good client took %v, as long as the timeout", d)
	}
	var wg sync.WaitGroup
	for _, sc := range conns {
		wg.Go(func() {
			io.ReadAll(sc) // method replies, then the close
			if d := time.Since(start); d < timeout/2 || d > 10*timeout {
				t.Errorf("dropped after %v, want about %v", d, timeout)
			}
		})
	}
	wg.Wait()
	// The relayed client outlives the handshake timeout.
	echoes(t, c, "still here")
}

func TestIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	addr, _ := setup(t, func(o *Options) { o.IdleTimeout = idle })
	c := dial(t, addr)
	noAuth(t, c)
	write(t, c, ipv4Req(CmdConnect, [4]byte{127, 0, 0, 1}, 80)...)
	if code, _ := readReply(t, c); code != ReplySucceeded {
		t.Fatalf("reply %#02x", code)
	}
	// Traffic keeps it open past the idle timeout...
	var last time.Time
	for range 5 {
		echoes(t, c, "ping")
		last = time.Now()
		time.Sleep(idle / 2)
	}
	// ...and silence closes it, measured from the last traffic.
	expectClosed(t, c)
	if d := time.Since(last); d < idle {
		t.Errorf("closed after %v of silence, want at least %v", d, idle)
	}
}

// At MaxConns a new stream closes the one that has moved no byte for the
// longest; connections in their handshake do not count against it.
func TestMaxConns(t *testing.T) {
	addr, _ := setup(t, func(o *Options) { o.MaxConns = 2 })
	stream := func() net.Conn {
		c := dial(t, addr)
		noAuth(t, c)
		write(t, c, ipv4Req(CmdConnect, [4]byte{127, 0, 0, 1}, 80)...)
		if code, _ := readReply(t, c); code != ReplySucceeded {
			t.Fatalf("reply %#02x", code)
		}
		return c
	}
	a, b := stream(), stream()
	echoes(t, b, "b")
	echoes(t, a, "a") // b is now the idlest
	handshaking := dial(t, addr)
	noAuth(t, handshaking) // not a stream yet: evicts nobody
	echoes(t, b, "b still here")
	echoes(t, a, "a still here")
	c := stream()
	expectClosed(t, b)
	echoes(t, a, "a unaffected")
	echoes(t, c, "c served")
}

// A flood of silent connections, far past maxHandshakes and
// maxHandshakesPerSource, never locks out a new client: the oldest
// handshakes are evicted, the newest kept, and the server holds no more
// than its limit. The timeout is long, so it is not what frees the slots.
func TestHandshakeFloodEvictsOldest(t *testing.T) {
	addr, _ := setup(t, func(o *Options) { o.HandshakeTimeout = time.Minute })
	idle := make([]net.Conn, 2*maxHandshakes)
	for i := range idle {
		idle[i] = dial(t, addr)
	}
	c := dial(t, addr)
	noAuth(t, c)
	write(t, c, domainReq("example.com", 80)...)
	if code, _ := readReply(t, c); code != ReplySucceeded {
		t.Fatalf("reply %#02x", code)
	}
	echoes(t, c, "served behind the flood")

	open := stillOpen(idle)
	// Every flood connection comes from 127.0.0.1, as the client does.
	if n := len(open); n == 0 || n > maxHandshakesPerSource {
		t.Fatalf("%d of %d silent connections still open, want 1..%d", n, len(idle), maxHandshakesPerSource)
	}
	if open[0] || !open[len(idle)-1] {
		t.Errorf("oldest open %v, newest open %v: want the oldest evicted and the newest kept", open[0], open[len(idle)-1])
	}
}

// stillOpen reports, for each connection the server has not closed, true
// at its index: it waits a moment for a close to arrive.
func stillOpen(conns []net.Conn) map[int]bool {
	var mu sync.Mutex
	open := map[int]bool{}
	var wg sync.WaitGroup
	deadline := time.Now().Add(300 * time.Millisecond)
	for i, c := range conns {
		c.SetReadDeadline(deadline)
		wg.Go(func() {
			var b [1]byte
			_, err := c.Read(b[:])
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				mu.Lock()
				open[i] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return open
}

// Cancelling Serve's context closes the listener and every connection,
// whatever state it is in, and Serve returns.
func TestServeStops(t *testing.T) {
	checkNoLeaks(t)
	ec := &echoConnector{echo: startEcho(t)}
	blocked := make(chan struct{})
	opts := DefaultOptions()
	opts.Connector = ConnectorFunc(func(ctx context.Context, req Request, cred Credentials) (io.ReadWriteCloser, Reply, error) {
		if req.Host == "slow.test" {
			close(blocked)
			<-ctx.Done() // a circuit that never comes
			return nil, Reply{Code: ReplyGeneralFailure}, ctx.Err()
		}
		return ec.Connect(ctx, req, cred)
	})
	addr, stop := startServer(t, opts)

	relaying := dial(t, addr)
	noAuth(t, relaying)
	write(t, relaying, ipv4Req(CmdConnect, [4]byte{127, 0, 0, 1}, 80)...)
	if code, _ := readReply(t, relaying); code != ReplySucceeded {
		t.Fatalf("reply %#02x", code)
	}
	echoes(t, relaying, "x")
	silent := dial(t, addr)
	connecting := dial(t, addr)
	noAuth(t, connecting)
	write(t, connecting, domainReq("slow.test", 80)...)
	<-blocked

	start := time.Now()
	stop()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Serve took %v to stop", d)
	}
	for _, c := range []net.Conn{relaying, silent, connecting} {
		// A client may get a reply first; then the close.
		var ne net.Error
		if _, err := io.ReadAll(c); errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("connection still open: %v", err)
		}
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("listener still accepting")
	}
}

func TestNewServerOptions(t *testing.T) {
	ec := &echoConnector{}
	for _, tc := range []struct {
		name string
		mod  func(*Options)
	}{
		{"no connector", func(o *Options) { o.Connector = nil }},
		{"no method", func(o *Options) { o.AllowNoAuth, o.AllowUserPass = false, false }},
		{"negative timeout", func(o *Options) { o.HandshakeTimeout = -1 }},
		{"negative max", func(o *Options) { o.MaxConns = -1 }},
	} {
		opts := DefaultOptions()
		opts.Connector = ec
		tc.mod(&opts)
		if _, err := NewServer(opts); err == nil {
			t.Errorf("%s: NewServer succeeded", tc.name)
		}
	}
	s, err := NewServer(Options{Connector: ec, AllowNoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.opts.HandshakeTimeout != 5*time.Second || s.opts.MaxConns != 1024 {
		t.Errorf("defaults not filled in: %+v", s.opts)
	}
}

// A Connector that breaks its contract (no stream, no error) gets a
// general failure, not a panic.
func TestConnectorNilStream(t *testing.T) {
	checkNoLeaks(t)
	opts := DefaultOptions()
	opts.Connector = ConnectorFunc(func(context.Context, Request, Credentials) (io.ReadWriteCloser, Reply, error) {
		return nil, Reply{}, nil
	})
	addr, _ := startServer(t, opts)
	c := dial(t, addr)
	noAuth(t, c)
	write(t, c, ipv4Req(CmdConnect, [4]byte{127, 0, 0, 1}, 80)...)
	if code, _ := readReply(t, c); code != ReplyGeneralFailure {
		t.Fatalf("reply %#02x, want general failure", code)
	}
	expectClosed(t, c)
}
