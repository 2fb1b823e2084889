package relay

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"time"

	"veil/relay/link"
)

const (
	// handshakeTimeout bounds a TLS handshake on the OR port, so a peer
	// that connects and stalls costs a goroutine for seconds, not forever.
	handshakeTimeout = 10 * time.Second
	// maxPendingHandshakes bounds handshakes in progress at once (G9).
	maxPendingHandshakes = 256
)

// orListener accepts links on the OR port: a TLS handshake that proves the
// relay's identity (and a relay peer's), then the link protocol.
type orListener struct {
	ln   net.Listener
	tls  *tls.Config
	eng  *engine
	log  *slog.Logger
	wg   sync.WaitGroup // the accept loop and every link it accepted
	sema chan struct{}
}

func newORListener(ln net.Listener, cfg *tls.Config, eng *engine, log *slog.Logger) *orListener {
	return &orListener{ln: ln, tls: cfg, eng: eng, log: log, sema: make(chan struct{}, maxPendingHandshakes)}
}

// serve accepts until ctx ends, then closes the listener and waits for the
// handshakes in progress.
func (o *orListener) serve(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { o.ln.Close() })
	defer stop()
	defer o.wg.Wait()
	for {
		c, err := o.ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				o.log.Warn("or port accept failed", "err", err)
			}
			return
		}
		select {
		case o.sema <- struct{}{}:
		default:
			// Too many handshakes at once: shed the newest.
			c.Close()
			continue
		}
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			o.handle(ctx, c)
		}()
	}
}

// handle runs one accepted connection: handshakes (counted against
// maxPendingHandshakes), then the link until it closes or ctx ends.
func (o *orListener) handle(ctx context.Context, c net.Conn) {
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	tc := tls.Server(link.WrapConn(c), o.tls)
	err := tc.HandshakeContext(hctx)
	var l *link.Link
	if err == nil {
		l, err = link.Establish(hctx, tc, link.Options{Handler: o.eng, Logger: o.log})
	} else {
		c.Close()
	}
	<-o.sema
	if err != nil {
		o.log.Debug("or port: no link", "remote", c.RemoteAddr(), "err", err)
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
