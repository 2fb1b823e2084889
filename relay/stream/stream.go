// Package stream carries one TCP stream's bytes over a circuit as DATA
// cells, with per-stream and per-circuit flow control whose SENDMEs prove
// receipt (onion/SPEC.md §9, §10). The same code runs at both ends: the
// client for a SOCKS connection, the exit for its TCP connection.
package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"veil/onion"
)

var (
	// ErrEnded is returned once the far end ended the stream or the
	// circuit went away.
	ErrEnded = errors.New("stream: ended")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("stream: closed")
	// ErrWriteClosed is returned by a Write after CloseWrite.
	ErrWriteClosed = errors.New("stream: write after half-close")
	// errDataAfterFin: a peer that said FIN must send no more DATA.
	errDataAfterFin = errors.New("stream: DATA after FIN")
)

// Sender sends relay cells to the far end of the circuit. It encrypts
// and enqueues one cell and returns the cell's endpoint tag, which flow
// control needs. Calls are serialised by the circuit's lock.
type Sender interface {
	SendRelay(ctx context.Context, cmd onion.RelayCmd, streamID uint16, data []byte) ([onion.TagLen]byte, error)
}

// A Sender that is also a Flusher may hold DATA cells back until Flush,
// so that a Write of many cells hands them to the link at once. Write
// flushes before it waits for a window and before it returns.
type Flusher interface {
	Flush()
}

// Circuit is the flow-control state one circuit's streams share. Its lock
// guards every window and stream of the circuit, so that checking a
// window, encrypting the cell and counting it happen in one step, in the
// order cells go on the wire.
type Circuit struct {
	send Sender

	mu      sync.Mutex // guards everything below and in the streams
	cond    *sync.Cond // broadcast when a window opens or a stream ends
	sendWin *onion.SendWindow
	recvWin *onion.RecvWindow
	streams map[uint16]*Stream
	err     error // set when the circuit is gone
	// fresh lists the streams HandleData delivered to since the last
	// Flush; iov is Flush's scratch space for a vectored write.
	fresh []*Stream
	iov   [][]byte
}

// NewCircuit returns the stream state of a circuit that sends through s.
func NewCircuit(s Sender) *Circuit {
	c := &Circuit{
		send:    s,
		sendWin: onion.NewSendWindow(onion.CircWindowStart, onion.CircWindowIncrement),
		recvWin: onion.NewRecvWindow(onion.CircWindowStart, onion.CircWindowIncrement),
		streams: map[uint16]*Stream{},
	}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// Open registers a stream with the given ID.
func (c *Circuit) Open(id uint16) (*Stream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	if id == 0 || c.streams[id] != nil {
		return nil, fmt.Errorf("stream: ID %d is not free", id)
	}
	s := &Stream{id: id, c: c,
		sendWin: onion.NewSendWindow(onion.StreamWindowStart, onion.StreamWindowIncrement),
		recvWin: onion.NewRecvWindow(onion.StreamWindowStart, onion.StreamWindowIncrement)}
	c.streams[id] = s
	return s, nil
}

// Stream returns an open stream by ID.
func (c *Circuit) Stream(id uint16) *Stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[id]
}

// Len reports how many streams are open.
func (c *Circuit) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams)
}

// Fail ends every stream: the circuit is gone.
func (c *Circuit) Fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
	for id, s := range c.streams {
		s.endLocked(onion.EndDestroy)
		delete(c.streams, id)
	}
	c.cond.Broadcast()
}

// HandleSendme takes a circuit-level (stream 0) or stream-level SENDME.
func (c *Circuit) HandleSendme(streamID uint16, body []byte) error {
	m, err := onion.ParseSendme(body)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if streamID == 0 {
		err = c.sendWin.Ack(m.Tag)
	} else if s := c.streams[streamID]; s != nil {
		err = s.sendWin.Ack(m.Tag)
	}
	c.cond.Broadcast()
	return err
}

// HandleData delivers a DATA cell whose endpoint tag is tag, and reports
// whether its stream is open (the caller answers data for an unknown
// stream with END). A peer that overruns a window is a protocol error: the
// caller destroys the circuit. The stream's reader learns of the data at
// the next Flush, which the caller owes once it has delivered the cells it
// has at hand: a reader woken per cell would write 4 KB at a time.
func (c *Circuit) HandleData(streamID uint16, tag [onion.TagLen]byte, data []byte) (open bool, err error) {
	if len(data) > onion.MaxRelayData {
		// A DATA message is one cell (onion/SPEC.md §10): cutting a
		// longer one short would lose bytes silently.
		return false, fmt.Errorf("stream %d: DATA of %d bytes, more than one cell's %d", streamID, len(data), onion.MaxRelayData)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.recvWin.Arrived(tag); err != nil {
		return false, err
	}
	s := c.streams[streamID]
	if s != nil && s.remoteFin && !s.remoteEnded {
		return true, errDataAfterFin
	}
	if s == nil || s.remoteEnded {
		// Data for a stream that is gone still counts against the
		// circuit window and is freed at once.
		c.deliveredLocked(1)
		return false, nil
	}
	if err := s.recvWin.Arrived(tag); err != nil {
		return true, err
	}
	buf := cellBufs.Get().(*[onion.MaxRelayData]byte)
	n := copy(buf[:], data)
	s.inbox = append(s.inbox, queued{data: buf[:n], buf: buf, at: time.Now()})
	if !s.fresh {
		s.fresh = true
		c.fresh = append(c.fresh, s)
	}
	return true, nil
}

// Flush passes on what HandleData delivered since the last Flush. A
// stream being copied to a socket by WriteTo has its data written to the
// socket right here, without waiting, so that the copying goroutine need
// not be woken for every burst; what the socket does not take at once,
// and the data of every other stream, wakes the stream's reader.
func (c *Circuit) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	wake := false
	for i, s := range c.fresh {
		c.fresh[i] = nil
		s.fresh = false
		if len(s.inbox) == 0 || s.closed {
			continue
		}
		if s.sink == nil || s.writing || s.handoff || !c.writeDirectLocked(s) {
			s.handoff = true
			wake = true
		}
	}
	c.fresh = c.fresh[:0]
	if wake {
		c.cond.Broadcast()
	}
}

// writeDirectLocked writes s's queued data to its sink in one vectored
// write that never waits, and reports whether the socket took it all.
func (c *Circuit) writeDirectLocked(s *Stream) bool {
	for _, q := range s.inbox {
		c.iov = append(c.iov, q.data)
	}
	var n int
	var werr error
	err := s.sink.Write(func(fd uintptr) bool {
		n, werr = unix.Writev(int(fd), c.iov)
		return true // never wait: that is WriteTo's job
	})
	clear(c.iov)
	c.iov = c.iov[:0]
	if err != nil || werr != nil || n <= 0 {
		return false // full, or failing: WriteTo finds out which
	}
	s.direct += int64(n)
	s.consumeLocked(n)
	return len(s.inbox) == 0
}

// HandleEnd takes an END from the far end.
func (c *Circuit) HandleEnd(streamID uint16, reason onion.EndReason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.streams[streamID]; s != nil {
		s.endLocked(reason)
	}
}

// HandleFin takes a FIN from the far end: it will send no more data, and
// once what it sent is read the stream's reader sees io.EOF. The stream
// stays open for writing until this end closes it too (SPEC.md §10).
func (c *Circuit) HandleFin(streamID uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.streams[streamID]; s != nil {
		s.remoteFin = true
		c.cond.Broadcast()
	}
}

// Queued reports the bytes that arrived on the circuit's streams and are
// not read yet, and when the oldest of them arrived (zero if none). A
// relay's memory cap uses it to pick the circuits to sacrifice.
func (c *Circuit) Queued() (bytes int, oldest time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.streams {
		for _, q := range s.inbox {
			bytes += len(q.data)
			if oldest.IsZero() || q.at.Before(oldest) {
				oldest = q.at
			}
		}
	}
	return bytes, oldest
}

// deliveredLocked frees n cells of the circuit window and sends the
// circuit SENDMEs that are due.
func (c *Circuit) deliveredLocked(n int) {
	for range n {
		if due, tag := c.recvWin.Delivered(); due {
			c.sendmeLocked(0, tag)
		}
	}
}

func (c *Circuit) sendmeLocked(streamID uint16, tag [onion.TagLen]byte) {
	m := onion.Sendme{Tag: tag}
	body, _ := m.Marshal()
	// A SENDME that cannot be sent means the circuit is failing; its
	// owner sees that on the next send or from the link.
	c.send.SendRelay(context.Background(), onion.RelaySendme, streamID, body)
}

// flush writes out DATA cells the Sender held back.
func (c *Circuit) flush() {
	if f, ok := c.send.(Flusher); ok {
		f.Flush()
	}
}

// Stream is one stream's bytes. It implements io.ReadWriteCloser with
// deadlines good enough for the SOCKS server and exit copying.
type Stream struct {
	id uint16
	c  *Circuit

	// guarded by c.mu
	sendWin     *onion.SendWindow
	recvWin     *onion.RecvWindow
	inbox       []queued // bounded by recvWin: at most StreamWindowStart cells
	remoteEnded bool     // END arrived: the stream is over both ways
	remoteFin   bool     // FIN arrived: nothing more will arrive
	finSent     bool     // CloseWrite sent FIN: nothing more may be sent
	endReason   onion.EndReason
	closed      bool
	fresh       bool // in c.fresh

	// moved counts the bytes written to and read from the stream, and
	// active is when it last changed (unix nanoseconds), so a copier can
	// tell a busy stream from an idle one (Moved, LastActive) without
	// wrapping it, which would hide WriteTo and ReadFrom.
	moved  atomic.Uint64
	active atomic.Int64

	// While WriteTo copies the stream to a socket, sink writes to it
	// without waiting (Flush). writing says WriteTo is writing data it
	// took from the inbox, so nothing may be written before it is done;
	// handoff that Flush left the inbox to WriteTo until it is empty.
	// direct counts the bytes Flush wrote.
	sink    syscall.RawConn
	writing bool
	handoff bool
	direct  int64
}

// queued is data that arrived and waits to be read; buf is the pooled
// buffer data lies in.
type queued struct {
	data []byte
	buf  *[onion.MaxRelayData]byte
	at   time.Time
}

// cellBufs recycles the buffers queued data is copied into, so that a
// stream at full speed does not allocate 4 KB per cell.
var cellBufs = sync.Pool{New: func() any { return new([onion.MaxRelayData]byte) }}

func (q *queued) release() {
	if q.buf != nil {
		cellBufs.Put(q.buf)
	}
	*q = queued{}
}

// ID returns the stream ID.
func (s *Stream) ID() uint16 { return s.id }

func (s *Stream) endLocked(reason onion.EndReason) {
	if !s.remoteEnded {
		s.remoteEnded, s.endReason = true, reason
	}
	s.c.cond.Broadcast()
}

// Moved reports how many bytes have been written to the stream and read
// from it so far.
func (s *Stream) Moved() uint64 { return s.moved.Load() }

// LastActive reports when a byte was last written to the stream or read
// from it; the zero time if none ever was.
func (s *Stream) LastActive() time.Time {
	if ns := s.active.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// count records n bytes moved now.
func (s *Stream) count(n int) {
	s.moved.Add(uint64(n))
	s.active.Store(time.Now().UnixNano())
}

// Ended reports whether the far end ended the stream both ways (END), or
// the circuit is gone: then nothing written would arrive, and a copier
// that has delivered what arrived can close both sides.
func (s *Stream) Ended() bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.remoteEnded || s.c.err != nil
}

// EndReason reports why the far end ended the stream, once it has.
func (s *Stream) EndReason() (onion.EndReason, bool) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.endReason, s.remoteEnded
}

// Write sends p as DATA cells, waiting while the stream's or the
// circuit's window is shut.
func (s *Stream) Write(p []byte) (int, error) {
	c := s.c
	n := 0
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.flush()
	// One clock read a Write, not one a cell: LastActive only ranks idle
	// streams, and moved, counted per cell, shows progress meanwhile.
	defer func() {
		if n > 0 {
			s.active.Store(time.Now().UnixNano())
		}
	}()
	for len(p) > 0 {
		for c.err == nil && !s.closed && !s.finSent && !s.remoteEnded && !(s.sendWin.CanSend() && c.sendWin.CanSend()) {
			c.flush()
			c.cond.Wait()
		}
		switch {
		case s.closed:
			return n, ErrClosed
		case c.err != nil || s.remoteEnded:
			return n, ErrEnded
		case s.finSent:
			return n, ErrWriteClosed
		}
		chunk := p[:min(len(p), onion.MaxRelayData)]
		tag, err := c.send.SendRelay(context.Background(), onion.RelayData, s.id, chunk)
		if err != nil {
			return n, err
		}
		s.sendWin.Sent(tag)
		c.sendWin.Sent(tag)
		s.moved.Add(uint64(len(chunk)))
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// Read returns data that arrived, waiting for some; io.EOF once the far
// end ended the stream and everything before its END was read.
func (s *Stream) Read(p []byte) (int, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(s.inbox) == 0 && !s.remoteEnded && !s.remoteFin && !s.closed && c.err == nil {
		c.cond.Wait()
	}
	if len(s.inbox) == 0 {
		return 0, s.endErrLocked()
	}
	// Fill p from as many queued cells as fit: one Read per cell would
	// cost the reader a wake-up and the caller a write per 4 KB.
	n := s.takeLocked(p)
	return n, nil
}

// takeLocked moves as much queued data into p as fits.
func (s *Stream) takeLocked(p []byte) int {
	n := 0
	for _, q := range s.inbox {
		k := copy(p[n:], q.data)
		if n += k; k < len(q.data) {
			break
		}
	}
	s.consumeLocked(n)
	return n
}

// endErrLocked is what a read of an empty inbox returns once nothing
// more can arrive.
func (s *Stream) endErrLocked() error {
	switch {
	case s.closed:
		return ErrClosed
	case s.remoteEnded && (s.endReason == onion.EndDone || s.endReason == 0):
		return io.EOF
	case s.remoteFin:
		// Everything the far end sent before its FIN was read: the
		// data is whole, whatever ended the stream after.
		return io.EOF
	default:
		return fmt.Errorf("%w: %v", ErrEnded, s.endReason)
	}
}

// consumeLocked drops the first n queued bytes, which were read; the
// whole cells among them are freed in both windows.
func (s *Stream) consumeLocked(n int) {
	s.count(n)
	cells := 0
	for n > 0 {
		head := &s.inbox[0]
		if n < len(head.data) {
			head.data = head.data[n:]
			break
		}
		n -= len(head.data)
		head.release()
		s.inbox = s.inbox[1:]
		cells++
	}
	for range cells {
		if due, tag := s.recvWin.Delivered(); due {
			s.c.sendmeLocked(s.id, tag)
		}
	}
	s.c.deliveredLocked(cells)
}

// ReadFrom reads, and WriteTo writes, a whole number of cells' worth at
// once, so that a source with plenty to send fills every cell. ReadFrom's
// buffer is held while it waits for its source, for as long as the stream
// is open, so it is as small as io.Copy's own; WriteTo's is taken only
// once data has arrived, so it can be larger and write more per system
// call.
const (
	readFromCells = 8  // 32,040 bytes
	writeToCells  = 16 // 64,080 bytes
)

var (
	readFromBufs = sync.Pool{New: func() any { return new([readFromCells * onion.MaxRelayData]byte) }}
	writeToBufs  = sync.Pool{New: func() any { return new([writeToCells * onion.MaxRelayData]byte) }}
)

// ReadFrom sends what it reads from r until r ends (io.Copy uses it).
// Each read asks for a whole number of cells so that bulk data leaves in
// full cells, not in cells cut wherever io.Copy's 32 KiB buffer ended.
func (s *Stream) ReadFrom(r io.Reader) (int64, error) {
	buf := readFromBufs.Get().(*[readFromCells * onion.MaxRelayData]byte)
	defer readFromBufs.Put(buf)
	var total int64
	for {
		n, rerr := r.Read(buf[:])
		if n > 0 {
			k, err := s.Write(buf[:n])
			total += int64(k)
			if err != nil {
				return total, err
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// WriteTo writes the stream's data to w as it arrives, as much as has
// arrived in each write, until the stream ends (io.Copy uses it). When w
// is a socket, Flush writes what arrived straight to it as long as it
// takes it without waiting, and WriteTo writes only what Flush left.
func (s *Stream) WriteTo(w io.Writer) (int64, error) {
	c := s.c
	var sink syscall.RawConn
	if sc, ok := w.(syscall.Conn); ok {
		sink, _ = sc.SyscallConn()
	}
	c.mu.Lock()
	s.sink = sink
	c.mu.Unlock()
	var total int64
	defer func() {
		c.mu.Lock()
		s.sink = nil
		c.mu.Unlock()
	}()
	for {
		c.mu.Lock()
		for !s.remoteEnded && !s.remoteFin && !s.closed && c.err == nil &&
			(len(s.inbox) == 0 || (s.sink != nil && !s.handoff)) {
			c.cond.Wait()
		}
		total += s.direct
		s.direct = 0
		if len(s.inbox) == 0 {
			err := s.endErrLocked()
			c.mu.Unlock()
			if err == io.EOF {
				err = nil
			}
			return total, err
		}
		// The buffer is taken only once data is there, so a stream
		// that waits holds none.
		buf := writeToBufs.Get().(*[writeToCells * onion.MaxRelayData]byte)
		n := s.takeLocked(buf[:])
		s.writing = true
		c.mu.Unlock()

		k, werr := w.Write(buf[:n])
		total += int64(k)
		writeToBufs.Put(buf)

		c.mu.Lock()
		s.writing = false
		if len(s.inbox) == 0 {
			s.handoff = false
		}
		c.mu.Unlock()
		if werr != nil {
			return total, werr
		}
	}
}

// CloseWrite half-closes the stream: it sends FIN, after which this end
// sends no more data but still reads what the far end sends, until the far
// end sends FIN or END in turn (SPEC.md §10). Close still has to be
// called to forget the stream.
func (s *Stream) CloseWrite() error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case c.err != nil || s.remoteEnded:
		return ErrEnded
	case s.finSent:
		return nil
	}
	s.finSent = true
	c.cond.Broadcast()
	// DATA the Sender held back goes first, in order.
	c.flush()
	_, err := c.send.SendRelay(context.Background(), onion.RelayFin, s.id, nil)
	return err
}

// Close ends the stream from this side with END DONE and forgets it.
func (s *Stream) Close() error { return s.CloseWith(onion.EndDone) }

// CloseWithError ends the stream for the reason err gives: DONE for nil,
// TIMEOUT for a deadline, CONNRESET for any other failure of the
// connection the stream was copied to, so that the far end can tell a
// complete stream from a cut one.
func (s *Stream) CloseWithError(err error) error {
	switch {
	case err == nil:
		return s.CloseWith(onion.EndDone)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return s.CloseWith(onion.EndTimeout)
	default:
		return s.CloseWith(onion.EndConnReset)
	}
}

// CloseWith ends the stream from this side with the given reason.
func (s *Stream) CloseWith(reason onion.EndReason) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	delete(c.streams, s.id)
	// Cells still queued were never read: free their circuit window so
	// the other streams are not starved.
	c.deliveredLocked(len(s.inbox))
	for i := range s.inbox {
		s.inbox[i].release()
	}
	s.inbox = nil
	c.cond.Broadcast()
	// Once FIN went both ways, both ends know the stream is over and
	// each forgets it on its own: no END is owed.
	if c.err != nil || s.remoteEnded || (reason == onion.EndDone && s.finSent && s.remoteFin) {
		return nil
	}
	m := onion.End{Reason: reason}
	body, _ := m.Marshal()
	_, err := c.send.SendRelay(context.Background(), onion.RelayEnd, s.id, body)
	return err
}
