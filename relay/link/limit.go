package link

import (
	"veil/onion"
	"veil/relay/internal/ratelimit"
)

// A relay's bandwidth cap (Options.Limiter) is applied here, on both
// directions of every link.
//
// Writing: a capped link keeps its send queue shallow (shallowQueue), so
// that cells waiting for tokens wait in their circuits' queues, which
// refill serves one circuit after another. The writer takes tokens before
// it takes cells off the queue, for as many cells as are queued up to
// creditCells, so it never pays for cells that are not there. When the
// bucket is empty it writes what it has buffered, then waits for tokens. A
// Flush from another goroutine never waits: without tokens it leaves the
// work to the writer.
//
// Reading: the reader pays for each cell once it has read it, before
// handing it on. Out of tokens, it first flushes what it forwarded (as it
// would before waiting for its peer), then waits; while it waits it reads
// nothing, so the peer's TCP window closes behind it, as Tor's read bucket
// does.

// shallowQueue is how many cells a capped link lets into its send queue
// (a batch), instead of the whole queue: past it, cells wait in their
// circuits' queues, which refill serves in turn. A cell that arrives
// for a light circuit then waits behind a batch, not behind a whole send
// queue of a busy circuit's cells, which at a low cap is seconds.
const shallowQueue = batchCells

// sendqShallowFull reports whether a capped link's send queue holds
// shallowQueue cells; always false without a cap.
func (l *Link) sendqShallowFull() bool {
	return l.limit.Capped() && len(l.sendq) >= shallowQueue
}

// creditCells is the most cells the writer pays for at once: what fits
// in the smallest bucket a limiter keeps, so that a request never exceeds
// the burst.
const creditCells = ratelimit.MinBurst / onion.CellSize

// creditWanted is the tokens the writer asks for at once: the cells
// queued now, at least one, at most creditCells.
func (l *Link) creditWanted() int {
	cells := len(l.sendq) + int(l.nwaiting.Load())
	return min(max(cells, 1), creditCells) * onion.CellSize
}

// mayWrite reports whether the writer may write one more cell now: it
// has tokens left, or the limiter gives a batch's worth without waiting.
// With wmu held.
func (l *Link) mayWrite() bool {
	if l.limit == nil || l.writeCredit >= onion.CellSize {
		return true
	}
	n := l.creditWanted()
	if !l.limit.Allow(ratelimit.Write, n) {
		return false
	}
	l.writeCredit += n
	return true
}

// spendWrite counts one written cell against the tokens taken.
func (l *Link) spendWrite() {
	if l.limit != nil {
		l.writeCredit -= onion.CellSize
	}
}

// waitWriteCredit waits for a batch's tokens, with wmu held; false if the
// link started closing first.
func (l *Link) waitWriteCredit() bool {
	n := l.creditWanted()
	if !l.limit.Wait(ratelimit.Write, n, l.closing) {
		return false
	}
	l.writeCredit += n
	return true
}

// payRead takes one cell's tokens for a cell just read, waiting for them
// if the bucket is empty (until the link closes).
func (l *Link) payRead() {
	if l.limit.Allow(ratelimit.Read, onion.CellSize) {
		return
	}
	l.flushLater()
	l.limit.Wait(ratelimit.Read, onion.CellSize, l.closing)
}
