package socks

import (
	"errors"
	"net"
	"sync/atomic"
	"time"

	"veil/relay/internal/admit"
)

// conn is one client connection as the server tracks it (SPEC.md §5): in
// its handshake, in the handshakes table; past its request, in streams.
// It records when a byte last moved, so that at MaxConns the stream idle
// the longest is the one closed, and tells its table entry when the
// client first speaks, so that at a handshake limit a silent one goes
// first.
type conn struct {
	net.Conn
	entry *admit.Entry // in handshakes; set before the conn is served
	last  atomic.Int64 // unix nanoseconds of the last byte read or written
	// stream, once relaying, says when its stream last moved a byte:
	// the relay then copies the bare connection, so that the stream's
	// WriteTo can write to the socket directly, and last stops moving.
	stream atomic.Pointer[activeStream]

	inStreams bool // in streams (guarded by Server.mu)
}

// activeStream is a stream that tracks its own activity (*stream.Stream).
type activeStream interface{ LastActive() time.Time }

// lastActive is when c last moved a byte, on its socket or its stream.
func (c *conn) lastActive() int64 {
	last := c.last.Load()
	if s := c.stream.Load(); s != nil {
		if t := (*s).LastActive(); !t.IsZero() {
			last = max(last, t.UnixNano())
		}
	}
	return last
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
		c.entry.Hear()
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

var errNoHalfClose = errors.New("socks: connection cannot half-close")

// CloseWrite and CloseRead pass half-closes through to a TCP connection.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoHalfClose
}

func (c *conn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return errNoHalfClose
}

// track records a new connection as handshaking and returns it, or nil if
// the server is stopping. At maxHandshakesPerSource for its source, or at
// maxHandshakes, it evicts another handshake (admit.Table.Admit). It never
// waits: closing the evicted connection only wakes its goroutine.
func (s *Server) track(nc net.Conn) *conn {
	c := &conn{Conn: nc}
	c.last.Store(time.Now().UnixNano())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	var why admit.Eviction
	c.entry, why = s.handshakes.Admit(c)
	switch why {
	case admit.AtSourceLimit:
		s.log.Debug("socks handshake evicted: at the per-source limit", "max", maxHandshakes, "per_source", maxHandshakesPerSource)
	case admit.AtLimit:
		s.log.Debug("socks handshake evicted: at the limit", "max", maxHandshakes, "per_source", maxHandshakesPerSource)
	}
	return c
}

// promote moves c from handshaking to streams once its request is in. At
// MaxConns it first closes the stream that has moved no byte for the
// longest. It reports false when c was evicted meanwhile or the server is
// stopping.
func (s *Server) promote(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.handshakes.Done(c.entry) {
		return false
	}
	if len(s.streams) >= s.opts.MaxConns {
		// A scan, not a heap: it runs only at the bound, over at most
		// MaxConns entries, and keeps Read and Write lock-free.
		var idlest *conn
		for o := range s.streams {
			if idlest == nil || o.lastActive() < idlest.lastActive() {
				idlest = o
			}
		}
		delete(s.streams, idlest)
		idlest.inStreams = false
		idlest.Close()
		s.log.Debug("socks stream evicted: at MaxConns", "max", s.opts.MaxConns)
	}
	c.inStreams = true
	s.streams[c] = struct{}{}
	c.last.Store(time.Now().UnixNano())
	return true
}

// untrack forgets c, wherever it is.
func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handshakes.Done(c.entry)
	if c.inStreams {
		delete(s.streams, c)
		c.inStreams = false
	}
}
