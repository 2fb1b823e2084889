package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"veil/relay/internal/admit"
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
	// oldest that has sent nothing is closed to make room, or else the
	// oldest, never the newest: an honest peer (the seed's reachability
	// probe, a client, a relay) sends its ClientHello at once and finishes
	// in milliseconds, so it is never chosen while silent ones remain,
	// and idle junk only evicts itself.
	maxPendingHandshakes = 256
	// maxPendingPerSource bounds one source's share of the pending table,
	// so one address cannot evict everyone else's handshakes; past it
	// that source's own victim goes (the same rule, among its own). Honest
	// peers on one address (relays sharing a host, clients behind a NAT, a
	// whole testnet on 127.0.0.1) finish in milliseconds and are never 64
	// at once; and since eviction takes the silent and the oldest, even
	// they would lose only stalled handshakes.
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
	// pending holds connections in their handshake.
	pending *admit.Table
}

func newORListener(ln net.Listener, cfg *tls.Config, eng *engine, log *slog.Logger) *orListener {
	return &orListener{ln: ln, tls: cfg, eng: eng, log: log, pending: admit.New(maxPendingHandshakes, maxPendingPerSource)}
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
		e, hc := o.admit(c)
		o.wg.Go(func() { o.handle(ctx, e, hc) })
	}
}

// admit puts c on the pending table, which at maxPendingPerSource or
// maxPendingHandshakes first evicts another handshake (admit.Table.Admit).
// The connection it returns marks the entry heard at its first byte.
func (o *orListener) admit(c net.Conn) (*admit.Entry, net.Conn) {
	e, why := o.pending.Admit(c)
	if why != admit.NoEviction {
		o.log.Debug("or port handshake evicted", "max", maxPendingHandshakes, "per_source", maxPendingPerSource)
	}
	return e, &heardConn{Conn: c, e: e}
}

// heardConn marks its pending entry heard when the first byte arrives
// (the peer's TLS ClientHello). It stays under the link for the
// connection's life, at the cost of one atomic load per read.
type heardConn struct {
	net.Conn
	e *admit.Entry
}

func (c *heardConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.e.Hear()
	}
	return n, err
}

// SyscallConn passes on the socket's, which link.WrapConn looks for to
// write without blocking.
func (c *heardConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("relay: not a socket")
}

// handle runs one accepted connection: handshakes (on the pending table),
// then the link until it closes or ctx ends.
func (o *orListener) handle(ctx context.Context, e *admit.Entry, c net.Conn) {
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	tc := tls.Server(link.WrapConn(c), o.tls)
	stage := "tls"
	err := tc.HandshakeContext(hctx)
	var l *link.Link
	if err == nil {
		stage = "versions"
		l, err = link.Establish(hctx, tc, link.Options{Handler: o.eng, Logger: o.log, HandshakeTimeout: handshakeTimeout, Limiter: o.eng.r.limiter})
		// Establish's error names the peer's address, which a relay's
		// log must not list; its cause does not.
		if cause := errors.Unwrap(err); cause != nil {
			err = cause
		}
	} else {
		c.Close()
	}
	kept := o.pending.Done(e)
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
