package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"veil/directory"
	"veil/onion"
)

// A seed measures a relay's bandwidth by timing cells through it
// (directory/SPEC.md §5.6), rather than trusting what the relay claims.

// pongWaiter is a PING whose PONG someone waits for.
type pongWaiter struct {
	nonce uint64
	done  chan struct{}
}

// pongArrived wakes the measurement waiting for this nonce, if any.
func (c *Circuit) pongArrived(nonce uint64) {
	if w := c.pongWait.Load(); w != nil && w.nonce == nonce && c.pongWait.CompareAndSwap(w, nil) {
		close(w.done)
	}
}

// Measure times how fast relay e takes cells from this client. Over a new
// one-hop circuit it sends cells DROP cells as fast as the link takes them,
// then a PING, and stops the clock at the PONG: a relay handles a
// circuit's cells in order, so the PONG leaves only after every DROP was
// received, decrypted and handled. It returns bytes a second, whole cells
// counted.
func (cl *Client) Measure(ctx context.Context, e directory.Entry, cells int) (float64, error) {
	fail := func(err error) (float64, error) {
		return 0, fmt.Errorf("client: measure %s: %w", e.Descriptor.Nickname, err)
	}
	c, err := cl.Build(ctx, []directory.Entry{e})
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	var b [8]byte
	rand.Read(b[:])
	// The top bit keeps it apart from the watcher's counting nonces.
	w := &pongWaiter{nonce: binary.BigEndian.Uint64(b[:]) | 1<<63, done: make(chan struct{})}
	c.pongWait.Store(w)
	ping, err := (&onion.Ping{Nonce: w.nonce}).Marshal()
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	for range cells {
		if _, err := c.sendRelay(ctx, onion.RelayDrop, 0, nil, 0, false); err != nil {
			return fail(err)
		}
	}
	if _, err := c.sendRelay(ctx, onion.RelayPing, 0, ping, 0, false); err != nil {
		return fail(err)
	}
	select {
	case <-w.done:
	case <-c.Done():
		return fail(c.Err())
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	return float64(cells+1) * onion.CellSize / time.Since(start).Seconds(), nil
}
