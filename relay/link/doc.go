// Package link is a link between two veil nodes: the VERSIONS exchange,
// reading and writing fixed-size cells over TLS with bounded queues,
// circuit-ID allocation, and a clean shutdown. It knows nothing about what
// circuits do with cells.
//
// # Establishing
//
// The TLS handshake comes first and is not done here (linkauth.Dial on the
// dialling side, tls.Server plus HandshakeContext on the accepting side).
// Establish then sends one VERSIONS cell (circuit ID 0) and reads the peer's,
// which must be the first cell the peer sends (onion/SPEC.md §2.3); the link
// speaks the highest version both list. A peer that sends anything else
// first, lists no version in common or sends nothing within
// Options.HandshakeTimeout fails Establish, and its connection is closed.
//
// # Goroutines and the stop order
//
// A link owns two goroutines, started by Establish:
//
//   - the reader reads one cell at a time from TLS, the payload straight
//     into a pooled cell, parses it with onion.ParseCellHeader, drops PADDING and calls Handler.HandleCell in cell
//     order. Every Handler call, LinkClosed included, is made from this
//     goroutine, one at a time.
//   - the writer, woken by Send, TrySend and Enqueue, takes cells from the
//     bounded send queue (refilled from the circuits' waiting cells),
//     marshals them into a 64 KiB buffer and hands it to TLS
//     whenever it is full or the queue is momentarily empty: a burst
//     leaves as few large TLS records, a lone cell at once. The buffer
//     comes from a pool and goes back at each flush, so an idle link holds
//     none. The writer also runs the idle check.
//
// Waking the writer for every burst costs a thread switch per hop, which
// on a relay forwarding at full speed is a good part of its CPU. So a
// producer may instead Queue cells and then Flush the link itself: Flush
// writes the queue from the caller's goroutine when no one else is
// writing, and never waits, leaving whatever the connection does not take
// at once (and everything, if the writer is busy) to the writer. A
// relay's Handler passes cells on with Forward, which has the reader of
// the link they came from flush them once it has handled the cells it has
// at hand (FlushLater), before it next waits for its peer; a slow next
// hop thus never stalls the reader of another link.
//
// A connection wrapped with WrapConn before its TLS handshake (Dial does
// it) makes a link cheaper in system calls: it reads the socket 64 KiB at
// a time, tells the reader when a read would go to the socket (the end of
// a burst), and is corked from the first cell after a flush to the next
// flush, so that all the TLS records of a burst leave in one write. A link
// over an unwrapped connection behaves the same, one write per record,
// with every FlushLater done at once.
//
// Close and CloseWithError only start the shutdown; they never wait, so they
// are safe to call from anywhere, Handler callbacks included. Wait (or Done)
// waits for the end of it. A relay closing many links closes them all first
// and then waits, so their drain periods overlap instead of adding up. The
// stop order is:
//
//  1. closeWithError records the reason, once, and closes the closing
//     channel. A local Close gives the writer until now+CloseTimeout (a write
//     deadline) to write out what was already queued; a failure (a read or
//     write error, a malformed cell) sets a deadline in the past on both
//     directions, so neither goroutine stays blocked in the connection.
//  2. The writer drains the queue if asked to, sends close_notify and closes
//     the connection, then exits. It is the only goroutine that closes the
//     connection, and does so holding the write lock that a Flush takes
//     too, so no Write ever races a Close.
//  3. The reader stops handing cells to the Handler as soon as it sees the
//     closing signal, returns when the closed connection fails its Read,
//     waits for the writer, calls Handler.LinkClosed exactly once and closes
//     Done.
//
// With a Handler that does not block, the whole shutdown takes at most
// CloseTimeout, however the peer behaves: a peer that stops reading delays a
// close by at most that long.
//
// # Cells and ownership
//
// Cells come from a sync.Pool so the relay path (read, handle, send on
// another link) does not allocate per cell. HandleCell owns the cell it is
// given: it passes it to Send, TrySend, Queue or Forward on some link
// (which takes ownership and returns it to the pool once written), or calls
// Release. Code that builds cells to
// send may take them from NewCell. A cell that is never released is simply
// garbage collected.
//
// # Back-pressure and what a link holds
//
// The send queue holds Options.SendQueue cells, shared by the link's
// circuits. Send blocks while it is full, until its context ends, which
// pushes back on whoever produces the cells; TrySend and Queue do not
// block. A Handler must not wait for room, though: its reader would stop
// reading every circuit of its own link for the sake of another link's
// peer, and two links that echo each other's traffic could deadlock. A
// relay's Handler uses Enqueue instead, which never blocks: a cell that
// finds the send queue full waits in its circuit's own queue on the link,
// behind the circuit's earlier cells, and the writer moves waiting cells
// into the send queue as room appears, one circuit after another in turn.
// What waits is bounded by the circuits' SENDME windows (SPEC.md §9), and
// for a sender that ignores its window by MaxCircuitQueue.
//
// Every cell a link holds is charged to its circuit (CircuitQueued), so
// that a relay short of memory can tell which circuits caused it; a
// circuit's waiting cells are dropped when its ID is released.
// Stats.Written counts what the socket has taken, which stops moving when
// the peer stops reading. And a write deadline closes the link with
// ErrWriteStalled once its peer has taken no byte for Options.WriteTimeout
// while cells wait: a peer that stops reading costs its own link, never
// the relay's other peers.
//
// # A relay's bandwidth cap
//
// Options.Limiter, one for all of a relay's links, caps the bytes they read
// and write (relay_bandwidth_rate, burst): the writer takes tokens before
// it writes, the reader after each cell it reads, and both wait when the
// bucket is empty, so the relay's peers are slowed by TCP as Tor's are. A
// capped link lets only a batch into its send queue; the rest waits in
// the circuits' queues and leaves one circuit after another, so one busy
// circuit does not hold back the others (limit.go).
//
// # Circuit IDs
//
// Both ends can open circuits on a link. As in Tor, the initiator (the side
// that dialled) uses IDs with the high bit set and the responder IDs with it
// clear, so they never collide; 0 is the link itself. The link keeps the set
// of IDs in use, at most MaxCircuitsPerLink/2 opened by each end, so a peer
// that floods CREATE can exhaust only its own half. IDs are handed out in
// sequence and reused only after the 2^31 IDs of a half wrap, so a late cell
// for a closed circuit does not land on a new one.
package link
