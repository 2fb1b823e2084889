package relay

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"time"
)

const (
	// handshakeTimeout bounds a TLS handshake on the OR port, so a peer
	// that connects and stalls costs a goroutine for seconds, not forever.
	handshakeTimeout = 10 * time.Second
	// maxPendingHandshakes bounds handshakes in progress at once (G9).
	maxPendingHandshakes = 256
)

// orListener accepts TLS links on the OR port. Until the link protocol
// lands (issue 4) it completes the handshake, which proves the relay's
// identity to whoever asks (a seed's check, a client), and closes.
type orListener struct {
	ln   net.Listener
	tls  *tls.Config
	log  *slog.Logger
	wg   sync.WaitGroup // the accept loop and every handshake
	sema chan struct{}
}

func newORListener(ln net.Listener, cfg *tls.Config, log *slog.Logger) *orListener {
	return &orListener{ln: ln, tls: cfg, log: log, sema: make(chan struct{}, maxPendingHandshakes)}
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
			defer func() { <-o.sema }()
			o.handle(ctx, c)
		}()
	}
}

func (o *orListener) handle(ctx context.Context, c net.Conn) {
	defer c.Close()
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	tc := tls.Server(c, o.tls)
	if err := tc.HandshakeContext(hctx); err != nil {
		o.log.Debug("or port handshake failed", "remote", c.RemoteAddr(), "err", err)
		return
	}
}
