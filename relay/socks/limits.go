package socks

import (
	"container/list"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// conn is one client connection as the server tracks it (SPEC.md §5): in
// its handshake, on the handshaking list; past its request, in streams.
// It records when a byte last moved, so that at MaxConns the stream idle
// the longest is the one closed.
type conn struct {
	net.Conn
	src  netip.Prefix // the source address, as perSource counts it
	last atomic.Int64 // unix nanoseconds of the last byte read or written
	// heard says the client has sent a byte: an honest client sends its
	// greeting at once, so a handshake that has said nothing is the one
	// to evict first, however young.
	heard atomic.Bool
	// stream, once relaying, says when its stream last moved a byte:
	// the relay then copies the bare connection, so that the stream's
	// WriteTo can write to the socket directly, and last stops moving.
	stream atomic.Pointer[activeStream]

	// Guarded by Server.mu.
	elem      *list.Element // on handshaking; nil once promoted or evicted
	inStreams bool          // in streams
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
		c.heard.Store(true)
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

// sourceOf is the unit perSource counts: an IPv4 address, or an IPv6 /64,
// since one host usually holds a whole /64 and could otherwise take a new
// address per connection.
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
	p, _ := ip.Prefix(bits)
	return p
}

// track records a new connection as handshaking and returns it, or nil if
// the server is stopping. At maxHandshakesPerSource for its source it
// evicts that source's oldest handshake; at maxHandshakes the oldest of
// all. It never waits: closing the evicted connection only wakes its
// goroutine.
func (s *Server) track(nc net.Conn) *conn {
	c := &conn{Conn: nc, src: sourceOf(nc.RemoteAddr())}
	c.last.Store(time.Now().UnixNano())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if s.perSource[c.src] >= maxHandshakesPerSource {
		if old := s.victim(func(o *conn) bool { return o.src == c.src }); old != nil {
			s.evictHandshake(old, "socks handshake evicted: at the per-source limit")
		}
	}
	if s.handshaking.Len() >= maxHandshakes {
		s.evictHandshake(s.victim(func(*conn) bool { return true }), "socks handshake evicted: at the limit")
	}
	c.elem = s.handshaking.PushBack(c)
	s.perSource[c.src]++
	return c
}

// victim picks the handshake to evict among those that match: the oldest
// that has sent nothing, or else the oldest. A flood of silent
// connections that keeps dialling again thus evicts only itself, even
// while an honest client's handshake waits on a slow machine. Called with
// s.mu held, on a list of at most maxHandshakes.
func (s *Server) victim(match func(*conn) bool) *conn {
	var oldest *conn
	for e := s.handshaking.Front(); e != nil; e = e.Next() {
		c := e.Value.(*conn)
		if !match(c) {
			continue
		}
		if !c.heard.Load() {
			return c
		}
		if oldest == nil {
			oldest = c
		}
	}
	return oldest
}

// evictHandshake closes c, the oldest handshake by some count. Called
// with s.mu held.
func (s *Server) evictHandshake(c *conn, why string) {
	s.dropHandshake(c)
	c.Close()
	s.log.Debug(why, "max", maxHandshakes, "per_source", maxHandshakesPerSource)
}

// dropHandshake takes c off the handshaking list. Called with s.mu held.
func (s *Server) dropHandshake(c *conn) {
	if c.elem == nil {
		return
	}
	s.handshaking.Remove(c.elem)
	c.elem = nil
	if s.perSource[c.src]--; s.perSource[c.src] <= 0 {
		delete(s.perSource, c.src)
	}
}

// promote moves c from handshaking to streams once its request is in. At
// MaxConns it first closes the stream that has moved no byte for the
// longest. It reports false when c was evicted meanwhile or the server is
// stopping.
func (s *Server) promote(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.elem == nil || s.closed {
		return false
	}
	s.dropHandshake(c)
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
	s.dropHandshake(c)
	if c.inStreams {
		delete(s.streams, c)
		c.inStreams = false
	}
}
