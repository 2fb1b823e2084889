package link

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"veil/onion"
)

// MaxCircuitQueue bounds the cells one circuit may have queued on one link,
// in the send queue and waiting for room together (G9): 1536 cells, 6 MiB.
// Flow control already bounds an honest circuit: its sender has at most
// onion.CircWindowStart (1024) DATA cells unacknowledged each way, and the
// cells windows do not count (SENDMEs, one per 64 DATA cells; BEGIN, END,
// PING) are few beside them; half a window more covers those. A circuit
// past the bound has a sender that ignores its window: Enqueue refuses the
// cell and the relay destroys the circuit.
const MaxCircuitQueue = onion.CircWindowStart + onion.CircWindowStart/2

var (
	// ErrCircuitQueueFull: the cell's circuit has MaxCircuitQueue cells
	// queued on the link already.
	ErrCircuitQueueFull = errors.New("link: circuit has too many cells queued")
	// ErrQueueFull: the send queue is full and the cell belongs to no
	// circuit in use on the link, so it has no queue of its own to wait in.
	ErrQueueFull = errors.New("link: send queue full")
)

// circQueue is one circuit's share of a link's queue: every cell the link
// holds is charged to the circuit it belongs to, so the relay can tell who
// caused what it holds (Link.CircuitQueued), and a cell that finds the send
// queue full waits here, in order behind the circuit's earlier cells,
// instead of blocking whoever queued it.
type circQueue struct {
	// queued counts the circuit's cells in the send queue and waiting:
	// added when a cell is queued, taken when the writer has written it
	// or the cell is dropped.
	queued atomic.Int32
	// nwaiting is how many cells wait, readable without waitMu: a
	// producer that reads 0 may put its cell straight into the send
	// queue, since every earlier cell of the circuit is in there already
	// (refill puts a cell in the send queue before it counts it out).
	nwaiting atomic.Int32
	// gone is set once the circuit's ID is released, for the readers
	// that keep q at hand (forwardQueue).
	gone atomic.Bool
	id   uint32

	// The link's waitMu guards the following fields.
	// waiting holds the cells that found the send queue full, oldest at
	// head.
	waiting []*onion.Cell
	head    int
	// active: the circuit is on the link's active list (it has cells
	// waiting). released: its circuit ID was released; nothing more
	// waits here.
	active, released bool
}

// queuedCell is an entry of the send queue: a cell and the circuit it is
// charged to (nil for a cell of no circuit in use on the link).
type queuedCell struct {
	c *onion.Cell
	q *circQueue
}

// forwardQueue is circQueueOf for Forward, which from's reader calls: the
// reader keeps the last queue it looked up, and a burst of one circuit's
// cells, the bulk of what a relay forwards, takes no lock for it.
func (l *Link) forwardQueue(from *Link, id uint32) *circQueue {
	if q := from.fwdQ; q != nil && from.fwdTo == l && q.id == id && !q.gone.Load() {
		return q
	}
	q := l.circQueueOf(id)
	from.fwdTo, from.fwdQ = l, q
	return q
}

// circQueueOf returns the queue of circuit id, nil when id is not in use.
func (l *Link) circQueueOf(id uint32) *circQueue {
	if id == 0 {
		return nil
	}
	l.circMu.Lock()
	q := l.circs[id]
	l.circMu.Unlock()
	return q
}

// queue puts c in the send queue if there is room, charging it to q, and
// reports whether it did. A cell whose circuit has cells waiting is not
// queued: it must not overtake them. A DESTROY may: its circuit is over,
// and what still waits is dropped when its ID is released.
func (l *Link) queue(c *onion.Cell, q *circQueue) bool {
	if q != nil {
		if c.Cmd != onion.CellDestroy && (q.nwaiting.Load() > 0 || l.sendqShallowFull()) {
			return false
		}
		// Counted before it is queued, so the writer never takes it
		// out of a count it is not in yet.
		q.queued.Add(1)
	}
	select {
	case l.sendq <- queuedCell{c, q}:
		return true
	default:
		if q != nil {
			q.queued.Add(-1)
		}
		return false
	}
}

// Enqueue queues c and never waits. When the send queue is full, or c's
// circuit already has cells waiting, c waits in its circuit's own queue on
// the link, behind them; the writer moves waiting cells into the send queue
// as room appears, one circuit after another in turn. So a peer that stops
// reading holds up only the cells bound for it, and whoever queues cells
// for it (another link's reader, a relay forwarding) goes on with its own
// work; what waits is bounded by the senders' flow-control windows and, for
// a sender that ignores its window, by MaxCircuitQueue.
//
// It fails with ErrClosed once the link closes, ErrCircuitQueueFull when
// c's circuit has MaxCircuitQueue cells queued, and ErrQueueFull when the
// send queue is full and c belongs to no circuit in use on the link (a
// DESTROY never waits: it is dropped, as TrySend drops it). On an error the
// caller still owns c. Cells of one circuit must be queued by one goroutine
// at a time, in the order they are to leave, as their encryption requires
// anyway.
func (l *Link) Enqueue(c *onion.Cell) error {
	if err := checkSend(c); err != nil {
		return err
	}
	if l.isClosing.Load() {
		return ErrClosed
	}
	q := l.circQueueOf(c.CircID)
	if l.queue(c, q) {
		l.wake()
		return nil
	}
	if q == nil || c.Cmd == onion.CellDestroy {
		return ErrQueueFull
	}
	return l.enqueueWaiting(c, q)
}

// enqueueWaiting puts c at the end of its circuit's waiting cells.
func (l *Link) enqueueWaiting(c *onion.Cell, q *circQueue) error {
	l.waitMu.Lock()
	defer l.waitMu.Unlock()
	// Checked under waitMu: the reader drops every waiting cell under it
	// once the link has closed, so nothing can wait after that.
	if l.isClosing.Load() {
		return ErrClosed
	}
	if q.released {
		return ErrQueueFull
	}
	// The writer may have moved every waiting cell out since the caller
	// looked.
	if q.head == len(q.waiting) && l.queue(c, q) {
		l.wake()
		return nil
	}
	if n := q.queued.Load(); n >= MaxCircuitQueue {
		return fmt.Errorf("%w: %d on the link", ErrCircuitQueueFull, n)
	}
	if q.head > 0 && len(q.waiting) == cap(q.waiting) {
		// Reuse the space the sent cells left at the front rather than
		// grow the slice.
		n := copy(q.waiting, q.waiting[q.head:])
		clear(q.waiting[n:])
		q.waiting, q.head = q.waiting[:n], 0
	}
	q.waiting = append(q.waiting, c)
	q.queued.Add(1)
	q.nwaiting.Add(1)
	l.nwaiting.Add(1)
	if !q.active {
		q.active = true
		l.active = append(l.active, q)
	}
	// The send queue is full, so the writer has work; if a Flush is
	// writing instead, it must know that cells wait.
	l.wake()
	return nil
}

// refill moves waiting cells into the send queue while it has room, one
// cell of each waiting circuit in turn, so that a circuit with a deep
// queue does not starve the others. The writer calls it before each batch,
// so cells that waited go ahead of those queued since.
func (l *Link) refill() {
	if l.nwaiting.Load() == 0 {
		return
	}
	l.waitMu.Lock()
	defer l.waitMu.Unlock()
	for len(l.active) > 0 {
		for i := 0; i < len(l.active); {
			q := l.active[i]
			if !l.offer(queuedCell{q.waiting[q.head], q}) {
				// Full: the next refill starts with this circuit.
				slices.Reverse(l.active[:i])
				slices.Reverse(l.active[i:])
				slices.Reverse(l.active)
				return
			}
			// In the send queue before it is counted out (see nwaiting).
			q.waiting[q.head] = nil
			q.head++
			q.nwaiting.Add(-1)
			l.nwaiting.Add(-1)
			if q.head < len(q.waiting) {
				i++
				continue
			}
			q.resetWaiting()
			q.active = false
			l.active = slices.Delete(l.active, i, i+1)
		}
	}
}

// offer puts qc in the send queue if it has room, counting a capped
// link's send queue full at shallowQueue cells (sendqShallowFull).
func (l *Link) offer(qc queuedCell) bool {
	if l.sendqShallowFull() {
		return false
	}
	select {
	case l.sendq <- qc:
		return true
	default:
		return false
	}
}

// resetWaiting empties q's waiting cells, keeping a small slice for the
// next burst but not the few KiB of pointers of a deep one.
func (q *circQueue) resetWaiting() {
	if cap(q.waiting) > 64 {
		q.waiting = nil
	} else {
		q.waiting = q.waiting[:0]
	}
	q.head = 0
}

// dropWaitingLocked releases q's waiting cells, with waitMu held.
func (l *Link) dropWaitingLocked(q *circQueue) {
	n := len(q.waiting) - q.head
	for _, c := range q.waiting[q.head:] {
		Release(c)
	}
	clear(q.waiting)
	q.resetWaiting()
	q.queued.Add(int32(-n))
	q.nwaiting.Add(int32(-n))
	l.nwaiting.Add(int32(-n))
	if q.active {
		q.active = false
		if i := slices.Index(l.active, q); i >= 0 {
			l.active = slices.Delete(l.active, i, i+1)
		}
	}
}

// releaseQueue drops what waits in q, whose circuit ID was released: the
// circuit is gone, and its peer would discard the cells. Cells already in
// the send queue are still written.
func (l *Link) releaseQueue(q *circQueue) {
	q.gone.Store(true)
	l.waitMu.Lock()
	defer l.waitMu.Unlock()
	q.released = true
	l.dropWaitingLocked(q)
}

// dropAllWaiting releases every waiting cell, once the link has closed.
func (l *Link) dropAllWaiting() {
	l.waitMu.Lock()
	defer l.waitMu.Unlock()
	for _, q := range slices.Clone(l.active) {
		l.dropWaitingLocked(q)
	}
}

// CircuitQueued returns how many cells of circuit id the link holds:
// queued in all, of which waiting for room in the send queue. A relay
// charges what it holds to the circuits that caused it with these: a
// destroyed circuit's waiting cells are freed at once, while those in the
// send queue leave with the link's other cells.
func (l *Link) CircuitQueued(id uint32) (queued, waiting int) {
	q := l.circQueueOf(id)
	if q == nil {
		return 0, 0
	}
	return int(q.queued.Load()), int(q.nwaiting.Load())
}
