package relay

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"veil/onion/keys"
	"veil/relay/internal/ratelimit"
	"veil/relay/link"
)

// linkPool keeps this relay's outgoing links to other relays, one per
// peer, so that many circuits share a link.
type linkPool struct {
	h link.Handler
	// onLink is told of every link the pool makes.
	onLink func(*link.Link)
	own    *keys.Identity
	log    *slog.Logger
	// limit caps what the links read and write (limits.go); nil is none.
	limit *ratelimit.Limiter

	mu   sync.Mutex // guards byID
	byID map[keys.NodeID]*link.Link
}

func newLinkPool(h link.Handler, own *keys.Identity, log *slog.Logger) *linkPool {
	return &linkPool{h: h, own: own, log: log, byID: map[keys.NodeID]*link.Link{}}
}

// get returns an open link to the relay id at addr, dialling one if
// needed. The TLS handshake proves the peer is id (linkauth).
func (p *linkPool) get(ctx context.Context, id keys.NodeID, addr netip.AddrPort) (*link.Link, error) {
	p.mu.Lock()
	l := p.byID[id]
	p.mu.Unlock()
	if l != nil {
		select {
		case <-l.Done():
		default:
			return l, nil
		}
	}
	conn, err := link.Dial(ctx, addr.String(), id, p.own)
	if err != nil {
		return nil, fmt.Errorf("link to %s: %w", id.Short(), err)
	}
	l, err = link.Establish(ctx, conn, link.Options{Handler: p.h, Initiator: true, Logger: p.log, Limiter: p.limit})
	if err != nil {
		return nil, fmt.Errorf("link to %s: %w", id.Short(), err)
	}
	p.mu.Lock()
	p.byID[id] = l
	p.mu.Unlock()
	if p.onLink != nil {
		p.onLink(l)
	}
	return l, nil
}

// forget drops a closed link.
func (p *linkPool) forget(l *link.Link) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, have := range p.byID {
		if have == l {
			delete(p.byID, id)
		}
	}
}

// closeAll closes every pooled link and waits for them.
func (p *linkPool) closeAll() {
	p.mu.Lock()
	links := slices.Collect(maps.Values(p.byID))
	p.mu.Unlock()
	for _, l := range links {
		l.Close()
	}
	for _, l := range links {
		l.Wait()
	}
}
