// Package splice joins a TCP connection to a circuit stream, copying bytes
// both ways until both directions have ended. The SOCKS proxy runs it
// between a client's connection and its stream, the exit between a stream
// and the destination's connection; so both ends of a stream end it the
// same way: an EOF is passed on as a half-close, and once one direction
// has ended the other must finish or go quiet within a bounded linger,
// after which both sockets are released.
package splice

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrIdle ends a splice that moved nothing for too long. It wraps
// os.ErrDeadlineExceeded so that a stream can end with TIMEOUT.
var ErrIdle = fmt.Errorf("splice: idle: %w", os.ErrDeadlineExceeded)

// DefaultLinger is the linger of both ends of a veil stream: long enough
// for a server that answers a half-closed request (nc -N, some HTTP/1.0
// clients) to start its answer, short enough that a client gone while its
// server keeps the connection alive frees the sockets and the stream soon
// (Tor frees them at once, and cannot carry a half-close at all).
const DefaultLinger = 30 * time.Second

// Options bound how long a splice may sit idle.
type Options struct {
	// Idle ends both directions when no byte has moved either way for
	// this long. 0 means never.
	Idle time.Duration
	// Linger ends both directions when, after one direction has ended,
	// the other has moved no byte for this long. 0 means never: a peer
	// that ignores a half-close then holds both sockets for as long as
	// it likes, which is how the proxy once ran out of descriptors.
	Linger time.Duration
}

// halfCloser passes an EOF on (*net.TCPConn, *stream.Stream).
type halfCloser interface{ CloseWrite() error }

// errCloser ends a side for a reason (*stream.Stream: DONE, TIMEOUT or
// CONNRESET), so the far end can tell a whole stream from a cut one.
type errCloser interface{ CloseWithError(error) error }

// ender reports that its far end ended both directions at once (a
// stream's END): nothing more can be sent to it, so there is no reason to
// wait for the other direction once what arrived is delivered.
type ender interface{ Ended() bool }

// meter counts the bytes that crossed it either way (*stream.Stream), so
// that idleness is seen without wrapping the copies, which would hide the
// stream's WriteTo and ReadFrom from io.Copy.
type meter interface{ Moved() uint64 }

// Run copies a to b and b to a until both directions are done, then closes
// both and returns the error that ended the splice (nil for a clean end).
// A direction whose source reaches EOF half-closes its destination; a
// destination that cannot be half-closed, an error either way, or a source
// whose far end ended both directions closes both at once. Each side's
// Close must unblock its Read and Write.
func Run(a, b io.ReadWriteCloser, o Options) error {
	r := &run{a: a, b: b}
	var src [2]io.Reader = [2]io.Reader{a, b}
	if m, ok := b.(meter); ok {
		r.moved = m.Moved
	} else if m, ok := a.(meter); ok {
		r.moved = m.Moved
	} else {
		var n atomic.Uint64
		r.moved = n.Load
		src = [2]io.Reader{&countingReader{a, &n}, &countingReader{b, &n}}
	}
	if o.Idle > 0 {
		r.watch(o.Idle)
	}
	var wg sync.WaitGroup
	wg.Go(func() { r.direction(b, src[0], o.Linger) })
	r.direction(a, src[1], o.Linger)
	wg.Wait()
	r.closeBoth(nil)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.timers {
		t.Stop()
	}
	return r.err
}

type run struct {
	a, b  io.ReadWriteCloser
	moved func() uint64

	mu     sync.Mutex // guards the fields below
	done   int        // directions finished
	closed bool
	err    error
	timers []*time.Timer
}

// direction copies src to dst and passes on how it ended.
func (r *run) direction(dst io.Writer, src io.Reader, linger time.Duration) {
	_, err := io.Copy(dst, src)
	if err == nil && !closeWrite(dst) {
		err = errors.New("splice: cannot half-close")
	}
	if c, ok := src.(*countingReader); ok {
		src = c.r
	}
	if e, ok := src.(ender); err == nil && ok && e.Ended() {
		// Delivered, and the far end will take nothing more.
		r.closeBoth(nil)
	}
	if err != nil {
		r.closeBoth(err)
	}
	r.mu.Lock()
	r.done++
	first := r.done == 1 && !r.closed
	r.mu.Unlock()
	if first && linger > 0 {
		r.watch(linger)
	}
}

// watch closes both sides once d passes with no byte moved.
func (r *run) watch(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	last := r.moved()
	var t *time.Timer
	// The callback takes r.mu, so it sees t assigned and never runs
	// beside itself on last.
	t = time.AfterFunc(d, func() {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		if now := r.moved(); now != last {
			last = now
			t.Reset(d)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		r.closeBoth(ErrIdle)
	})
	r.timers = append(r.timers, t)
}

// closeBoth closes both sides once, for err.
func (r *run) closeBoth(err error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed, r.err = true, err
	r.mu.Unlock()
	for _, c := range []io.Closer{r.a, r.b} {
		if ec, ok := c.(errCloser); ok {
			ec.CloseWithError(err)
		} else {
			c.Close()
		}
	}
}

// closeWrite half-closes w if it can, and reports whether it did.
func closeWrite(w io.Writer) bool {
	hc, ok := w.(halfCloser)
	return ok && hc.CloseWrite() == nil
}

// countingReader counts what it reads, for sides that do not count.
type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(uint64(n))
	return n, err
}
