package link

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

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
		return c.Conn.Write(p)
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
	for c.sent < len(*c.batch) {
		var n int
		var werr error
		err := c.raw.Write(func(fd uintptr) bool {
			n, werr = syscall.Write(int(fd), (*c.batch)[c.sent:])
			return true // never wait for room: that is uncork's job
		})
		switch {
		case err == nil && werr == nil && n > 0:
			c.sent += n
		case errors.Is(werr, syscall.EINTR):
		default:
			// Full (EAGAIN) or failing: uncork finds out which.
			return false
		}
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
	_, err := c.Conn.Write((*c.batch)[c.sent:])
	*c.batch, c.sent = (*c.batch)[:0], 0
	return err
}
