package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"veil/relay/socks"
)

// Greeting is what the testnet's web server answers on /, so that a fetch
// through the network can be recognised.
const Greeting = "hello from veil testnet\n"

// maxBytes bounds one /bytes/N answer.
const maxBytes = 1 << 40

// target is the web server every testnet runs on 127.0.0.1, so that the
// printed curl command, the tests and `make bench` fetch something local
// (testnet exits allow loopback only). /bytes/N answers N bytes of a fixed
// pattern.
type target struct {
	srv *http.Server
	ln  net.Listener
}

func startTarget() (*target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testnet: web server: %w", err)
	}
	t := &target{ln: ln, srv: &http.Server{Handler: http.HandlerFunc(serveTarget), ReadHeaderTimeout: 10 * time.Second}}
	go t.srv.Serve(ln)
	return t, nil
}

func (t *target) url() string { return "http://" + t.ln.Addr().String() + "/" }

func (t *target) close() { t.srv.Close() }

// Pattern returns the byte at offset i of every /bytes answer. It repeats
// every 64 KiB, which CheckPattern relies on.
func Pattern(i int64) byte { return byte(i*7 + i>>8) }

// patternBlock is one period of Pattern.
var patternBlock = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = Pattern(int64(i))
	}
	return b
}()

// CheckPattern reads r to its end and checks that it is exactly n bytes
// of Pattern, a 64 KiB block at a time.
func CheckPattern(r io.Reader, n int64) error {
	buf := make([]byte, len(patternBlock))
	var got int64
	for {
		k, err := io.ReadFull(r, buf)
		if k > 0 && !bytes.Equal(buf[:k], patternBlock[:k]) {
			return fmt.Errorf("bytes differ in the 64 KiB block at offset %d", got)
		}
		got += int64(k)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fmt.Errorf("after %d bytes: %w", got, err)
		}
	}
	if got != n {
		return fmt.Errorf("got %d bytes, want %d", got, n)
	}
	return nil
}

func serveTarget(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" {
		io.WriteString(w, Greeting)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/bytes/")
	n, err := strconv.ParseInt(rest, 10, 64)
	if !ok || err != nil || n < 0 || n > maxBytes {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	// Every write starts at a multiple of the pattern's period, so it is a
	// prefix of patternBlock. Computing the bytes one by one cost the
	// benchmark's web server about 1 ms of CPU per MB, taken from the two
	// cores the network under test shares with it.
	for off := int64(0); off < n; {
		k := min(int64(len(patternBlock)), n-off)
		if _, err := w.Write(patternBlock[:k]); err != nil {
			return
		}
		off += k
	}
}

// DialSOCKS opens a TCP connection to dest through a SOCKS5 proxy, with
// no authentication, or with user/pass for an isolated circuit when user
// is not empty.
func DialSOCKS(ctx context.Context, proxy string, dest netip.AddrPort, user, pass string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxy)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	fail := func(err error) (net.Conn, error) {
		c.Close()
		return nil, err
	}
	method := byte(socks.MethodNoAuth)
	if user != "" {
		method = socks.MethodUserPass
	}
	g, err := socks.MarshalGreeting(socks.Greeting{Methods: []byte{method}})
	if err != nil {
		return fail(err)
	}
	if _, err := c.Write(g); err != nil {
		return fail(err)
	}
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil {
		return fail(err)
	}
	if sel[1] != method {
		return fail(fmt.Errorf("proxy chose method %#x", sel[1]))
	}
	if user != "" {
		up, err := socks.MarshalUserPass(socks.Credentials{Username: user, Password: pass})
		if err != nil {
			return fail(err)
		}
		var st [2]byte
		if _, err := c.Write(up); err != nil {
			return fail(err)
		}
		if _, err := io.ReadFull(c, st[:]); err != nil || st[1] != socks.UserPassSuccess {
			return fail(fmt.Errorf("proxy refused the credentials: %v", err))
		}
	}
	req, err := socks.MarshalRequest(socks.Request{Cmd: socks.CmdConnect, Addr: dest.Addr(), Port: dest.Port()})
	if err != nil {
		return fail(err)
	}
	if _, err := c.Write(req); err != nil {
		return fail(err)
	}
	rep, err := socks.ReadReply(c)
	if err != nil {
		return fail(err)
	}
	if rep.Code != socks.ReplySucceeded {
		return fail(&ReplyError{Code: rep.Code})
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// ReplyError is a SOCKS reply other than success.
type ReplyError struct{ Code byte }

func (e *ReplyError) Error() string { return fmt.Sprintf("socks: proxy replied %#02x", e.Code) }

// fetchGreeting checks that the network carries a request end to end.
func fetchGreeting(ctx context.Context, proxy string, t *target) error {
	dest := netip.MustParseAddrPort(t.ln.Addr().String())
	c, err := DialSOCKS(ctx, proxy, dest, "", "")
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", dest)
	body, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(string(body), Greeting) {
		return errors.New("unexpected answer through the network")
	}
	return nil
}
