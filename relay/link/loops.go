package link

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	"veil/onion"
)

// readLoop is the reader goroutine: it hands cells to the Handler until the
// link breaks or closes, then waits for the writer, calls LinkClosed and
// closes done (the last step of the stop order in the package doc).
func (l *Link) readLoop() {
	if err := l.readCells(); err != nil {
		l.closeWithError(err, false) // a no-op if the link was closing already
	}
	l.flushLater()
	<-l.writerDone
	// Cells queued by a Send that raced the close, and those that waited
	// for room: back to the pool.
	for len(l.sendq) > 0 {
		l.dropQueued(<-l.sendq)
	}
	l.dropAllWaiting()
	l.log.Debug("link closed", "peer", l.peerName(), "addr", l.conn.RemoteAddr(), "err", l.closeErr)
	l.handler.LinkClosed(l, l.closeErr)
	close(l.done)
}

// readCells reads, parses and dispatches cells until an error. Once the link
// is closing it keeps reading, so the peer's last cells are consumed rather
// than answered with a reset, but hands nothing more to the Handler; the
// writer's closing the connection ends it.
func (l *Link) readCells() error {
	for {
		// TLS hands out a record's plaintext in whatever pieces it is
		// asked for, and the connection under it reads ahead, so a read
		// of one cell at a time costs no system call per cell. The
		// payload goes straight into the pooled cell: a copy through a
		// buffer would cost a 4 KiB memmove per cell per hop.
		n, err := io.ReadFull(l.conn, l.rbuf[:])
		if err != nil {
			return readError(err, n)
		}
		c := getCell()
		if m, err := io.ReadFull(l.conn, c.Payload[:]); err != nil {
			Release(c)
			return readError(err, n+m)
		}
		err = onion.ParseCellHeader(l.rbuf[:], c)
		if err != nil {
			Release(c)
			return fmt.Errorf("link: read: %w", err)
		}
		l.cellsIn.Add(1)
		if l.limit != nil {
			l.payRead()
		}
		switch {
		case l.isClosing.Load(), c.Cmd == onion.CellPadding:
			Release(c)
		case c.Cmd == onion.CellVersions:
			Release(c)
			return fmt.Errorf("link: read: %w: VERSIONS after the handshake", onion.ErrProtocol)
		default:
			l.handler.HandleCell(l, c)
		}
	}
}

// readError explains a failed read; partial is how much of a cell had
// arrived.
func readError(err error, partial int) error {
	switch {
	case errors.Is(err, io.EOF) && partial == 0:
		return ErrPeerClosed
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("link: read: peer closed the link inside a cell: %w", io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("link: read: %w", err)
}

// writeLoop is the writer goroutine. It alone closes the connection.
func (l *Link) writeLoop() {
	defer close(l.writerDone)
	err := l.writeCells()
	if err != nil {
		l.closeWithError(err, false)
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.closeConn(err == nil && l.drain)
}

// writeCells writes queued cells whenever it is woken, until the link
// closes or a write fails, and checks for idleness while it waits.
func (l *Link) writeCells() error {
	var idle <-chan time.Time
	if l.idleTimeout > 0 {
		t := time.NewTicker(max(l.idleTimeout/idleChecks, time.Millisecond))
		defer t.Stop()
		idle = t.C
	}
	var quiet int                   // idle checks in a row that saw no change
	var lastSeen uint64 = 1<<64 - 1 // activity at the previous check
	for {
		select {
		case <-l.kick:
		case <-l.closing:
			return nil
		case <-idle:
			if l.idleCheck(&quiet, &lastSeen) {
				l.closeWithError(ErrIdle, true)
			}
			continue
		}
		l.wmu.Lock()
		var err error
		if !l.isClosing.Load() {
			_, err = l.writeQueued(true)
		}
		l.wmu.Unlock()
		if err != nil {
			return err
		}
	}
}

// batchCells is how many cells writeQueued marshals between two writes
// to the connection. With their TLS records and the writer's buffer
// still to come, they stay within what a corked connection holds without
// writing (maxBatch), so a Flush never waits.
const batchCells = (maxBatch - writeBufferSize) / onion.CellSize

// writeQueued writes the queued cells until the queue is empty, with wmu
// held. wait says whether it may wait for the connection: the writer
// goroutine's may, a Flush's may not and returns done=false, leaving what
// the connection did not take corked, when it would have to. A Flush that
// finds the connection holding such leftovers leaves it all to the writer.
func (l *Link) writeQueued(wait bool) (done bool, err error) {
	if !wait && l.corked {
		return false, nil
	}
	for {
		// Cells that waited for room go in first, ahead of any queued
		// since (refill).
		l.refill()
		n := 0
		short := false // out of tokens (limit.go)
		for n < batchCells {
			if !l.mayWrite() {
				short = true
				break
			}
			qc, ok := l.take()
			if !ok && wait && n > 0 {
				// Give a producer in the middle of a burst one chance
				// to queue more before paying for a write system
				// call: with bulk traffic this batches cells into
				// large TLS records, and a lone cell waits only a
				// yield.
				runtime.Gosched()
				qc, ok = l.take()
			}
			if !ok {
				break
			}
			if err := l.writeCell(qc); err != nil {
				return false, err
			}
			l.spendWrite()
			n++
		}
		if err := l.flush(wait); err != nil {
			return false, err
		}
		if l.corked {
			return false, nil // only without wait: the socket is full
		}
		if short {
			// What was buffered has gone; now wait for tokens (the
			// writer) or leave the rest to the writer (a Flush).
			if !wait {
				return false, nil
			}
			if !l.waitWriteCredit() {
				return true, nil // closing
			}
			continue
		}
		if n < batchCells {
			return true, nil
		}
	}
}

// take returns the next queued cell, if any: from the send queue, or else
// from the circuits' waiting cells.
func (l *Link) take() (queuedCell, bool) {
	select {
	case qc := <-l.sendq:
		return qc, true
	default:
	}
	if l.nwaiting.Load() == 0 {
		return queuedCell{}, false
	}
	l.refill()
	select {
	case qc := <-l.sendq:
		return qc, true
	default:
		return queuedCell{}, false
	}
}

// dropQueued releases a cell taken from the send queue without writing it.
func (l *Link) dropQueued(qc queuedCell) {
	if qc.q != nil {
		qc.q.queued.Add(-1)
	}
	Release(qc.c)
}

// idleCheck reports whether the link has had no circuits and no cells
// either way for idleChecks checks in a row, that is, for IdleTimeout.
func (l *Link) idleCheck(quiet *int, lastSeen *uint64) bool {
	l.circMu.Lock()
	activity := l.circChanges
	busy := len(l.circs) > 0
	l.circMu.Unlock()
	activity += l.cellsIn.Load() + l.cellsOut.Load()
	if busy || activity != *lastSeen {
		*quiet = 0
	} else {
		*quiet++
	}
	*lastSeen = activity
	return *quiet >= idleChecks
}

// writeCell marshals a queued cell straight into the writer's buffer,
// releases it and counts it out of its circuit's queue. The first cell
// after a flush takes a buffer from the pool and corks the connection, so
// that every TLS record until the next flush leaves in one write.
func (l *Link) writeCell(qc queuedCell) error {
	c := qc.c
	if qc.q != nil {
		// Out of the circuit's count once in the buffer: what the
		// connection holds is the link's, not the circuit's.
		qc.q.queued.Add(-1)
	}
	if l.wbuf == nil {
		l.wbuf = writeBufs.Get().(*[]byte)
		if l.bc != nil && !l.corked {
			l.bc.cork()
			l.corked = true
		}
	} else if len(*l.wbuf)+onion.CellSize > writeBufferSize {
		if err := l.writeBuffered(); err != nil {
			Release(c)
			return err
		}
	}
	n := len(*l.wbuf)
	*l.wbuf = slices.Grow(*l.wbuf, onion.CellSize)[:n+onion.CellSize]
	err := c.MarshalTo((*l.wbuf)[n:])
	Release(c)
	if err != nil {
		// Send checks what MarshalTo would refuse but an unknown command.
		return fmt.Errorf("link: internal error: queued cell: %w", err)
	}
	l.cellsOut.Add(1)
	return nil
}

// writeBufs recycles the writers' buffers. A buffer grows to the bursts
// it carries, up to writeBufferSize, so links that send a cell now and
// then keep small ones.
var writeBufs = sync.Pool{New: func() any { return new([]byte) }}

// writeBuffered hands the buffered cells to TLS, which writes them as
// full records.
func (l *Link) writeBuffered() error {
	if len(*l.wbuf) == 0 {
		return nil
	}
	_, err := l.conn.Write(*l.wbuf)
	*l.wbuf = (*l.wbuf)[:0]
	if err != nil {
		return fmt.Errorf("link: write: %w", err)
	}
	return nil
}

// closeConn ends the connection, step 2 of the stop order. With drain it
// first writes out the queue and sends close_notify, all by the deadline
// closeWithError set; otherwise, or if that fails, it closes the TCP
// connection at once.
func (l *Link) closeConn(drain bool) {
	if drain && l.drainQueue() == nil {
		// tls.Conn.Close sends close_notify under its own 5 s deadline;
		// the timer keeps the whole close within ours.
		t := time.AfterFunc(time.Until(l.drainDeadline), func() { _ = l.conn.NetConn().Close() })
		_ = l.conn.Close()
		t.Stop()
		return
	}
	_ = l.conn.NetConn().Close()
}

func (l *Link) drainQueue() error {
	for {
		qc, ok := l.take()
		if !ok {
			return l.flush(true)
		}
		if err := l.writeCell(qc); err != nil {
			return err
		}
	}
}

// flush hands the writer's buffer to TLS, returns it to the pool and
// uncorks the connection. With wait it writes everything, waiting for the
// connection as long as it takes; without, what the connection does not
// take at once stays corked (l.corked) for a later flush with wait.
func (l *Link) flush(wait bool) error {
	if l.wbuf != nil {
		err := l.writeBuffered()
		writeBufs.Put(l.wbuf)
		l.wbuf = nil
		if err != nil {
			return err
		}
	}
	if !l.corked {
		return nil
	}
	if !wait {
		l.corked = !l.bc.tryUncork()
		return nil
	}
	l.corked = false
	if err := l.bc.uncork(); err != nil {
		return fmt.Errorf("link: write: %w", err)
	}
	return nil
}
