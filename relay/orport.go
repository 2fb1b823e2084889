package relay

import (
	"container/list"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"veil/relay/link"
)

const (
	// handshakeTimeout bounds the TLS handshake and the VERSIONS exchange
	// together on the OR port. They take two round trips and a few
	// milliseconds of CPU: under a second between continents; five
	// seconds forgives a loaded machine and a lost segment or two (TCP
	// retransmits after 1 s, then 2 s). A flood of stalled peers is
	// stopped by eviction (maxPendingHandshakes), not by this deadline.
	handshakeTimeout = 5 * time.Second
	// maxPendingHandshakes bounds handshakes in progress at once (G9):
	// each costs a goroutine and a TLS state of a few KiB. Past it the
	// oldest is closed to make room, never the newest: an honest peer
	// (the seed's reachability probe, a client, a relay) finishes in
	// milliseconds, so it is never the oldest, and idle junk only evicts
	// itself.
	maxPendingHandshakes = 256
	// maxPendingPerSource bounds one source's share of the pending table,
	// so one address cannot evict everyone else's handshakes; past it
	// that source's own oldest goes. Honest peers on one address (relays
	// sharing a host, clients behind a NAT, a whole testnet on 127.0.0.1)
	// finish in milliseconds and are never 64 at once; and since eviction
	// takes the oldest, even they would lose only stalled handshakes.
	maxPendingPerSource = 64
	// maxAcceptBackoff caps the pause after a failed Accept (out of file
	// descriptors...), which is retried rather than taking the port down.
	maxAcceptBackoff = time.Second
)

// orListener accepts links on the OR port: a TLS handshake that proves the
// relay's identity (and a relay peer's), then the link protocol.
type orListener struct {
	ln  net.Listener
	tls *tls.Config
	eng *engine
	log *slog.Logger
	wg  sync.WaitGroup // every link it accepted

	mu sync.Mutex // guards the following fields, and every pendingConn's elem
	// pending holds connections in their handshake, oldest first;
	// perSource counts them by source.
	pending   *list.List // of *pendingConn
	perSource map[netip.Prefix]int
}

// pendingConn is a connection in its handshake.
type pendingConn struct {
	c    net.Conn
	src  netip.Prefix
	elem *list.Element // on pending; nil once done or evicted (guarded by orListener.mu)
}

func newORListener(ln net.Listener, cfg *tls.Config, eng *engine, log *slog.Logger) *orListener {
	return &orListener{ln: ln, tls: cfg, eng: eng, log: log, pending: list.New(), perSource: map[netip.Prefix]int{}}
}

// serve accepts until ctx ends, then closes the listener and waits for the
// handshakes in progress and the links. The loop never waits on a peer:
// each connection's handshake runs in its own goroutine, and admitting one
// at a limit only closes another.
func (o *orListener) serve(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { o.ln.Close() })
	defer stop()
	defer o.wg.Wait()
	var backoff time.Duration
	for {
		c, err := o.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or the like: wait and retry, as
			// net/http does, rather than spin or close the port.
			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			o.log.Warn("or port accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			continue
		}
		backoff = 0
		p := o.admit(c)
		o.wg.Go(func() { o.handle(ctx, p) })
	}
}

// admit puts c on the pending table, first evicting its source's oldest
// handshake at maxPendingPerSource, or the oldest of all at
// maxPendingHandshakes.
func (o *orListener) admit(c net.Conn) *pendingConn {
	p := &pendingConn{c: c, src: sourceOf(c.RemoteAddr())}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.perSource[p.src] >= maxPendingPerSource {
		for e := o.pending.Front(); e != nil; e = e.Next() {
			if old := e.Value.(*pendingConn); old.src == p.src {
				o.evict(old)
				break
			}
		}
	}
	if o.pending.Len() >= maxPendingHandshakes {
		o.evict(o.pending.Front().Value.(*pendingConn))
	}
	p.elem = o.pending.PushBack(p)
	o.perSource[p.src]++
	return p
}

// evict closes p, whose handshake then fails. Called with o.mu held.
func (o *orListener) evict(p *pendingConn) {
	o.drop(p)
	p.c.Close()
	o.log.Debug("or port handshake evicted", "max", maxPendingHandshakes, "per_source", maxPendingPerSource)
}

// drop takes p off the pending table and reports whether it was still
// there (not evicted). Called with o.mu held.
func (o *orListener) drop(p *pendingConn) bool {
	if p.elem == nil {
		return false
	}
	o.pending.Remove(p.elem)
	p.elem = nil
	if o.perSource[p.src]--; o.perSource[p.src] <= 0 {
		delete(o.perSource, p.src)
	}
	return true
}

// handle runs one accepted connection: handshakes (on the pending table),
// then the link until it closes or ctx ends.
func (o *orListener) handle(ctx context.Context, p *pendingConn) {
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	tc := tls.Server(link.WrapConn(p.c), o.tls)
	stage := "tls"
	err := tc.HandshakeContext(hctx)
	var l *link.Link
	if err == nil {
		stage = "versions"
		l, err = link.Establish(hctx, tc, link.Options{Handler: o.eng, Logger: o.log, HandshakeTimeout: handshakeTimeout})
		// Establish's error names the peer's address, which a relay's
		// log must not list; its cause does not.
		if cause := errors.Unwrap(err); cause != nil {
			err = cause
		}
	} else {
		p.c.Close()
	}
	o.mu.Lock()
	kept := o.drop(p)
	o.mu.Unlock()
	if err == nil && !kept {
		// Evicted between Establish and here: its connection is closed.
		l.Close()
		l.Wait()
		err = errors.New("evicted")
	}
	if err != nil {
		o.log.Debug("or port: no link", "stage", stage, "err", withoutAddr(err))
		return
	}
	o.eng.mem.addLink(l)
	select {
	case <-l.Done():
	case <-ctx.Done():
		l.Close()
		l.Wait()
	}
}

// withoutAddr drops the addresses a socket error carries, for the log.
func withoutAddr(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return fmt.Errorf("%s: %w", oe.Op, oe.Err)
	}
	return err
}

// sourceOf is the unit maxPendingPerSource counts: an IPv4 address, or an
// IPv6 /64, since one host usually holds a whole /64 and could otherwise
// take a new address per connection.
func sourceOf(a net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Prefix{} // not TCP/IP: all such share one count
	}
	ip := ap.Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	pfx, _ := ip.Prefix(bits)
	return pfx
}
