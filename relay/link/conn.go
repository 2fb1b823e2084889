package link

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"veil/directory/linkauth"
	"veil/onion/keys"
)

const (
	// readAhead is how much a link's connection reads from the socket at
	// once. TLS asks for one record (at most ~16 KiB) at a time; on
	// loopback a read of 64 KiB costs about half as much CPU per byte as
	// reads of 16 KiB, and a link at full speed always has that much
	// waiting.
	readAhead = 64 << 10
	// maxBatch bounds what a corked connection holds before it writes
	// anyway: a flush of a full send queue still leaves in a few writes of
	// this size, and a corked connection never holds more.
	maxBatch = 256 << 10
)

// batchConn is the TCP connection under a link's TLS. It reads ahead in
// large chunks, and while the link's writer has it corked it gathers the
// TLS records of one flush so that they leave in one write system call
// instead of one per record: per-call costs, not bytes, dominate the
// kernel's side of a loopback link.
type batchConn struct {
	net.Conn
	// r is the TLS reader's only, nil until the link is established
	// (startReadAhead): a connection that never becomes a link, a seed's
	// probe say, costs no read-ahead buffer. beforeWait, also the reader's,
	// is called when a read must go to the socket and so may wait for
	// the peer: the link flushes what its reader forwarded then.
	r          *bufio.Reader
	beforeWait func()
	// raw writes without blocking (tryWrite); nil when the connection
	// under TLS is not a socket, net.Pipe in tests say.
	raw syscall.RawConn
	// writeTimeout is the link's Options.WriteTimeout, set by Establish
	// before the link's goroutines start; 0 until then (the handshakes
	// have deadlines of their own).
	writeTimeout time.Duration
	// written counts the bytes the socket has taken (Stats.Written).
	written atomic.Uint64
	// peerFull is set while a write waits for room in the socket, that
	// is for the peer to read: its receive window is closed
	// (Stats.WaitingForPeer).
	peerFull atomic.Bool

	dmu sync.Mutex // guards the following fields; never held across a write
	// deadline is the write deadline the link or TLS set (the handshake,
	// a close), zero when none. While it is set, writes keep it; otherwise
	// blocking writes arm writeTimeout of their own: at armedAt, when the
	// socket had taken armedWritten bytes.
	deadline     time.Time
	armedAt      time.Time
	armedWritten uint64

	mu     sync.Mutex // guards the following fields and orders writes
	corked bool
	batch  *[]byte // records waiting for uncork; pooled while corked
	sent   int     // bytes at the front of batch already written
}

// batchBufs recycles corked connections' write buffers: an idle link
// holds none. A buffer grows to the bursts it carries, so links that
// send a cell now and then keep small ones.
var batchBufs = sync.Pool{New: func() any { return new([]byte) }}

// WrapConn wraps a freshly accepted or dialled TCP connection for use
// under a link's TLS (tls.Server(link.WrapConn(c), cfg)), so that
// Establish can batch its reads and writes. A link over an unwrapped
// connection works too, one system call per TLS record.
func WrapConn(c net.Conn) net.Conn {
	bc := &batchConn{Conn: c}
	if sc, ok := c.(syscall.Conn); ok {
		bc.raw, _ = sc.SyscallConn()
	}
	return bc
}

// startReadAhead makes reads go through the read-ahead buffer, calling
// beforeWait (if not nil) whenever it is empty. Establish calls it before
// the reader goroutine starts.
func (c *batchConn) startReadAhead(beforeWait func()) {
	c.r = bufio.NewReaderSize(c.Conn, readAhead)
	c.beforeWait = beforeWait
}

// Dial connects to the relay id at addr over a wrapped connection and
// completes the TLS handshake (linkauth.Client); own is nil for an
// anonymous client.
func Dial(ctx context.Context, addr string, id keys.NodeID, own *keys.Identity) (*tls.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("link: dial %s: %w", addr, err)
	}
	return linkauth.Client(ctx, WrapConn(raw), id, own)
}

func (c *batchConn) Read(p []byte) (int, error) {
	if c.r == nil {
		return c.Conn.Read(p)
	}
	if c.r.Buffered() == 0 && c.beforeWait != nil {
		c.beforeWait()
	}
	return c.r.Read(p)
}

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return c.writeAll(p)
	}
	if len(*c.batch)-c.sent+len(p) > maxBatch {
		if err := c.writeBatchLocked(); err != nil {
			return 0, err
		}
	}
	*c.batch = append(*c.batch, p...)
	return len(p), nil
}

// cork makes writes wait in memory until uncork.
func (c *batchConn) cork() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		c.corked = true
		c.batch = batchBufs.Get().(*[]byte)
	}
}

// uncork writes what waited and makes writes direct again.
func (c *batchConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return nil
	}
	err := c.writeBatchLocked()
	c.corked = false
	batchBufs.Put(c.batch)
	c.batch = nil
	return err
}

// tryUncork is uncork without blocking: it writes what the socket takes
// at once and reports whether that was everything (and the connection is
// uncorked). Otherwise the rest stays corked, in order before anything
// written later, for an uncork to write. A connection that is not a
// socket writes nothing here.
func (c *batchConn) tryUncork() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return true
	}
	if c.raw == nil {
		return false
	}
	c.sent += c.tryWrite((*c.batch)[c.sent:])
	if c.sent < len(*c.batch) {
		// Full (EAGAIN) or failing: uncork finds out which.
		return false
	}
	c.corked = false
	*c.batch, c.sent = (*c.batch)[:0], 0
	batchBufs.Put(c.batch)
	c.batch = nil
	return true
}

func (c *batchConn) writeBatchLocked() error {
	if len(*c.batch) == c.sent {
		*c.batch, c.sent = (*c.batch)[:0], 0
		return nil
	}
	_, err := c.writeAll((*c.batch)[c.sent:])
	*c.batch, c.sent = (*c.batch)[:0], 0
	return err
}

// SetDeadline sets the deadline the link or TLS wants, which writes keep
// instead of arming their own while it is set.
func (c *batchConn) SetDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.deadline = t
	return c.Conn.SetDeadline(t)
}

// SetWriteDeadline is SetDeadline for writes alone.
func (c *batchConn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.deadline = t
	return c.Conn.SetWriteDeadline(t)
}

// armWriteDeadline makes sure the write about to start has a deadline:
// the link's own if it set one (it then reports false), or else one of
// writeTimeout from when it was last armed. That is rearmed only every
// writeTimeout/16, not at every write: a deadline is a runtime timer
// update, and a busy link writes tens of thousands of times a second.
func (c *batchConn) armWriteDeadline() bool {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if c.writeTimeout <= 0 || !c.deadline.IsZero() {
		return false
	}
	if now := time.Now(); c.armedAt.IsZero() || now.Sub(c.armedAt) >= c.writeTimeout/16 {
		_ = c.Conn.SetWriteDeadline(now.Add(c.writeTimeout))
		c.armedAt, c.armedWritten = now, c.written.Load()
	}
	return true
}

// writeAll writes p, waiting for room as long as the peer keeps taking
// bytes: when the deadline armed writeTimeout ago passes, the write goes
// on under a new one if the socket has taken any byte since, and fails
// with ErrWriteStalled if it has not. So a peer that stops reading is
// found between writeTimeout and twice that after it last took a byte,
// however large the write, and one that reads slowly never is.
func (c *batchConn) writeAll(p []byte) (int, error) {
	done := 0
	for {
		own := c.armWriteDeadline()
		n, err := c.write(p[done:])
		done += n
		if err == nil || !own || !errors.Is(err, os.ErrDeadlineExceeded) {
			return done, err
		}
		// The kernel wakes a waiting writer only once half the
		// socket's buffer has drained, so a peer that reads slowly may
		// have made room without waking us: one more try, without
		// waiting, tells.
		done += c.tryWrite(p[done:])
		if done == len(p) {
			return done, nil
		}
		c.dmu.Lock()
		closing := !c.deadline.IsZero()
		stalled := c.written.Load() == c.armedWritten
		c.armedAt = time.Time{} // rearm at once
		c.dmu.Unlock()
		switch {
		case closing:
			// The link set a deadline of its own meanwhile (a close):
			// this timeout may be its.
			return done, err
		case stalled:
			return done, fmt.Errorf("%w: it took no byte for %v", ErrWriteStalled, c.writeTimeout)
		}
	}
}

// tryWrite writes what the socket takes of p at once, without waiting
// for room, and returns how much that was: 0 when the socket is full, or
// failing (a write that waits finds out which), or not a socket.
func (c *batchConn) tryWrite(p []byte) int {
	if c.raw == nil {
		return 0
	}
	done := 0
	// Control, not Write: it neither waits for room nor fails on a write
	// deadline that passed since a blocking write armed it.
	_ = c.raw.Control(func(fd uintptr) {
		for done < len(p) {
			n, err := syscall.Write(int(fd), p[done:])
			switch {
			case n > 0:
				done += n
			case errors.Is(err, syscall.EINTR):
			default:
				return
			}
		}
	})
	c.written.Add(uint64(done))
	return done
}

// write writes p to the socket, waiting for room, and counts what the
// socket takes as it takes it, so that Stats.Written moves while a large
// write is still under way.
func (c *batchConn) write(p []byte) (int, error) {
	if c.raw == nil {
		n, err := c.Conn.Write(p)
		c.written.Add(uint64(n))
		return n, err
	}
	done := 0
	var werr error
	// As net.Conn.Write does it (write until EAGAIN, then wait for
	// room), but seeing each piece the socket takes.
	defer c.peerFull.Store(false)
	err := c.raw.Write(func(fd uintptr) bool {
		for done < len(p) {
			n, err := syscall.Write(int(fd), p[done:])
			if n > 0 {
				done += n
				c.written.Add(uint64(n))
			}
			switch {
			case err == nil && n > 0:
			case errors.Is(err, syscall.EINTR):
			case errors.Is(err, syscall.EAGAIN):
				c.peerFull.Store(true)
				return false // wait for room, then call again
			case err == nil:
				werr = io.ErrUnexpectedEOF
				return true
			default:
				werr = os.NewSyscallError("write", err)
				return true
			}
		}
		return true
	})
	if err == nil && werr != nil {
		err = &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: werr}
	}
	return done, err
}
