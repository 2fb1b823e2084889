package link

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"veil/directory/linkauth"
	"veil/onion"
	"veil/onion/keys"
	"veil/relay/internal/ratelimit"
)

const (
	// DefaultSendQueue is the send queue's length in cells when
	// Options.SendQueue is 0: 256 cells of 4 KiB are 1 MiB per link at most.
	// That absorbs a burst from many circuits at once (the writer's buffer
	// holds 16 cells) while keeping the queueing delay small: 1 MiB leaves a
	// loopback TLS link in a few milliseconds.
	DefaultSendQueue = 256
	// MaxSendQueue bounds Options.SendQueue (G9): 16 MiB per link.
	MaxSendQueue = 4096

	// DefaultHandshakeTimeout bounds the VERSIONS exchange when
	// Options.HandshakeTimeout is 0: a peer that connects and stalls costs a
	// connection for seconds, not forever.
	DefaultHandshakeTimeout = 10 * time.Second

	// DefaultWriteTimeout is Options.WriteTimeout when it is 0: a link whose
	// peer has taken no byte for a minute while cells wait for it is closed
	// (ErrWriteStalled). A peer that reads at all takes bytes every round
	// trip, and a client gives up on a silent hop after 10 s, so a minute
	// of nothing is a peer that stopped reading or a path that died, not a
	// slow one. TCP alone would keep retrying for some 15 minutes (and
	// forever against a zero window), holding the queue the whole time.
	// Tor closes an OR connection only after 10 keepalive periods (50
	// minutes) with its buffer stuck and leaves memory to its OOM handler;
	// veil's memory governor acts sooner under pressure, and this deadline
	// frees a stuck link's queue and circuits even without any.
	DefaultWriteTimeout = time.Minute

	// CloseTimeout bounds a local Close: the time the writer has to write
	// out what was queued before Close and send close_notify. A peer that
	// does not read delays a close by at most this long.
	CloseTimeout = 2 * time.Second

	// writeBufferSize is the size of the writer's buffer: 16 cells, four
	// full TLS records per write to the connection.
	writeBufferSize = 64 << 10

	// idleChecks is how many checks an idle period spans: a link is closed
	// between IdleTimeout and IdleTimeout*(1+1/idleChecks) after it fell idle.
	idleChecks = 4
)

// supportedVersions is what this package offers in VERSIONS, most preferred
// first (SPEC.md §1, §2.3).
var supportedVersions = []uint16{onion.ProtocolVersion}

var (
	// ErrClosed: the link is closed or closing; the cell was not queued.
	ErrClosed = errors.New("link: closed")
	// ErrIdle is the reason given to LinkClosed when IdleTimeout closed the link.
	ErrIdle = errors.New("link: idle timeout")
	// ErrWriteStalled is the reason given to LinkClosed when the peer took
	// no byte for WriteTimeout while cells waited for it.
	ErrWriteStalled = errors.New("link: peer stopped reading")
	// ErrPeerClosed: the peer closed the link between two cells.
	ErrPeerClosed = errors.New("link: peer closed the link")
	// ErrNoCommonVersion: the peer's VERSIONS cell lists no version we speak.
	ErrNoCommonVersion = errors.New("link: no common protocol version")
	// ErrInvalidCell: Send was given a cell no link may carry after the
	// handshake (nil, VERSIONS, or circuit ID 0 on a command that needs one).
	ErrInvalidCell = errors.New("link: invalid cell to send")
)

// Handler receives what a link reads. Both methods are called from the
// link's reader goroutine, one call at a time; HandleCell in the order the
// cells arrived. A Handler must not block for long: while it runs, nothing
// more is read from the peer. HandleCell may be called before Establish
// returns.
type Handler interface {
	// HandleCell is given every cell but PADDING and VERSIONS. The handler
	// owns c: it passes it to Send or calls Release when done with it.
	HandleCell(l *Link, c *onion.Cell)
	// LinkClosed is called exactly once, after the last HandleCell has
	// returned and the writer has closed the connection. err is nil after a
	// local Close, the argument of CloseWithError, ErrIdle, ErrPeerClosed,
	// or what broke the link (errors.Is(err, onion.ErrMalformed) for a
	// malformed cell).
	LinkClosed(l *Link, err error)
}

// Options configure a link. Handler is required; zero values elsewhere mean
// the defaults.
type Options struct {
	Handler Handler
	// Logger gets one line per link establishment and close; nil is silent.
	Logger *slog.Logger
	// Initiator is true on the side that dialled. It picks the half of the
	// circuit-ID space this end allocates from.
	Initiator bool
	// SendQueue is the send queue's length in cells (DefaultSendQueue if
	// 0, at most MaxSendQueue).
	SendQueue int
	// HandshakeTimeout bounds the VERSIONS exchange
	// (DefaultHandshakeTimeout if 0).
	HandshakeTimeout time.Duration
	// IdleTimeout closes the link, with ErrIdle, once it has had no circuits
	// and no cells either way for this long. 0 means never.
	IdleTimeout time.Duration
	// WriteTimeout closes the link, with ErrWriteStalled, once its peer has
	// taken no byte for between this long and twice this long while the
	// writer waited to write (DefaultWriteTimeout if 0). It needs a
	// connection wrapped by WrapConn, as every link veil makes is.
	WriteTimeout time.Duration
	// Limiter, shared by a relay's links, caps what they read and write
	// (relay_bandwidth_rate) and counts it; nil is no cap. See limit.go.
	Limiter *ratelimit.Limiter
}

// Link is one established link. Its methods are safe for concurrent use.
type Link struct {
	conn        *tls.Conn
	handler     Handler
	log         *slog.Logger
	initiator   bool
	peer        keys.NodeID
	peerOK      bool
	version     uint16
	idleTimeout time.Duration

	// rbuf is the reader goroutine's: the header of the cell being read
	// (its payload is read straight into the cell). flushers, also the
	// reader's, is what FlushLater put off until the reader next waits
	// for the peer; forwardedCells counts the cells Forward queued since.
	rbuf           [onion.CellHeaderLen]byte
	flushers       []Flusher
	forwardedCells int
	// fwdTo and fwdQ, also the reader's, are the link and circuit queue
	// Forward last queued a cell on (forwardQueue).
	fwdTo *Link
	fwdQ  *circQueue

	// wmu is held by whoever writes queued cells to the connection: the
	// writer goroutine, or a Flush that found the link idle. It guards
	// wbuf (the cells marshalled since the last flush, in a pooled buffer
	// held only between the first cell after a flush and the next flush,
	// so an idle link holds none) and corked (whether the connection is
	// corked by a flush in progress or holds what a Flush could not
	// write without waiting).
	wmu    sync.Mutex
	wbuf   *[]byte
	corked bool
	// writeCredit, also guarded by wmu, is bytes taken from the limiter
	// and not yet written (limit.go).
	writeCredit int
	// limit is Options.Limiter; nil is no cap.
	limit *ratelimit.Limiter
	// bc is the connection under TLS when it was wrapped (WrapConn), nil
	// otherwise.
	bc *batchConn

	// sendq is the send queue, shared by the link's circuits.
	sendq chan queuedCell
	// kick wakes the writer goroutine: something is queued that no Flush
	// will write.
	kick chan struct{}

	waitMu sync.Mutex // guards active and the waiting cells of every circQueue
	// active lists the circuits with cells waiting for room in the send
	// queue, in the order refill serves them; nwaiting counts their cells,
	// readable without waitMu.
	active   []*circQueue
	nwaiting atomic.Int32

	closeMu sync.Mutex // guards the following fields, written once
	// closeErr is the reason for the close; drain and drainDeadline tell the
	// writer whether and until when to write out the queue. All three are
	// written before closing is closed and read only after it is.
	closeErr      error
	drain         bool
	drainDeadline time.Time

	closing    chan struct{} // closed when the shutdown starts
	isClosing  atomic.Bool   // closing, readable without a select
	writerDone chan struct{} // closed when the writer goroutine exits
	done       chan struct{} // closed after LinkClosed returns

	cellsIn, cellsOut atomic.Uint64

	circMu sync.Mutex // guards the following fields
	// circs holds the circuit IDs in use, opened by either end, each with
	// its queue; ownCircs and peerCircs count them by end; nextCirc is the
	// next ID NewCircID tries; circChanges counts changes to circs, for the
	// idle check.
	circs       map[uint32]*circQueue
	ownCircs    int
	peerCircs   int
	nextCirc    uint32
	circChanges uint64
}

// Establish makes a link of conn, whose TLS handshake is complete: it
// exchanges VERSIONS under ctx and opts.HandshakeTimeout, then starts the
// link's goroutines. Establish owns conn: on error it is closed.
func Establish(ctx context.Context, conn *tls.Conn, opts Options) (*Link, error) {
	l, err := establish(ctx, conn, opts)
	if err != nil {
		// No close_notify: the peer is broken or gone, and a write could
		// block on it.
		_ = conn.NetConn().Close()
		return nil, fmt.Errorf("link: establish with %v: %w", conn.RemoteAddr(), err)
	}
	if l.bc != nil {
		l.bc.startReadAhead(l.flushLater)
	}
	go l.readLoop()
	go l.writeLoop()
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.Debug("link established", "peer", l.peerName(), "addr", conn.RemoteAddr(), "initiator", l.initiator)
	}
	return l, nil
}

func establish(ctx context.Context, conn *tls.Conn, opts Options) (*Link, error) {
	if opts.Handler == nil {
		return nil, errors.New("no handler")
	}
	queue := opts.SendQueue
	switch {
	case queue == 0:
		queue = DefaultSendQueue
	case queue < 0 || queue > MaxSendQueue:
		return nil, fmt.Errorf("send queue of %d cells outside 1..%d", queue, MaxSendQueue)
	}
	if opts.IdleTimeout < 0 {
		return nil, fmt.Errorf("negative idle timeout %v", opts.IdleTimeout)
	}
	writeTimeout := opts.WriteTimeout
	switch {
	case writeTimeout == 0:
		writeTimeout = DefaultWriteTimeout
	case writeTimeout < 0:
		return nil, fmt.Errorf("negative write timeout %v", writeTimeout)
	}
	timeout := opts.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	peer, peerOK, err := linkauth.PeerID(conn.ConnectionState())
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Link{
		conn:        conn,
		handler:     opts.Handler,
		log:         log,
		initiator:   opts.Initiator,
		peer:        peer,
		peerOK:      peerOK,
		idleTimeout: opts.IdleTimeout,
		limit:       opts.Limiter,
		sendq:       make(chan queuedCell, queue),
		kick:        make(chan struct{}, 1),
		closing:     make(chan struct{}),
		writerDone:  make(chan struct{}),
		done:        make(chan struct{}),
		circs:       make(map[uint32]*circQueue),
		nextCirc:    1,
	}
	l.bc, _ = conn.NetConn().(*batchConn)

	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	version, err := l.exchangeVersions()
	if !stop() || ctx.Err() != nil {
		// ctx ended: the deadline is (or is about to be) in the past.
		return nil, ctx.Err()
	}
	if err != nil {
		if errors.Is(err, ErrNoCommonVersion) || errors.Is(err, onion.ErrMalformed) || errors.Is(err, onion.ErrProtocol) {
			return nil, err
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("no VERSIONS cell within %v: %w", timeout, err)
		}
		return nil, fmt.Errorf("VERSIONS exchange: %w", err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	if l.bc != nil {
		// Before the link's goroutines start, the only ones to write.
		l.bc.writeTimeout = writeTimeout
	}
	l.version = version
	return l, nil
}

// exchangeVersions sends our VERSIONS cell, reads the peer's and returns the
// highest version both list (SPEC.md §2.3).
func (l *Link) exchangeVersions() (uint16, error) {
	vc, err := onion.NewVersionsCell(supportedVersions)
	if err != nil {
		panic("link: internal error: " + err.Error())
	}
	var buf [onion.CellSize]byte
	if err := vc.MarshalTo(buf[:]); err != nil {
		panic("link: internal error: " + err.Error())
	}
	if _, err := l.conn.Write(buf[:]); err != nil {
		return 0, err
	}
	l.cellsOut.Add(1)

	if _, err := io.ReadFull(l.conn, buf[:]); err != nil {
		return 0, err
	}
	var c onion.Cell
	if err := onion.ParseCell(buf[:], &c); err != nil {
		return 0, fmt.Errorf("first cell: %w", err)
	}
	l.cellsIn.Add(1)
	if c.Cmd != onion.CellVersions {
		return 0, fmt.Errorf("%w: first cell is %v, want VERSIONS", onion.ErrProtocol, c.Cmd)
	}
	theirs, err := c.Versions()
	if err != nil {
		return 0, err
	}
	var best uint16
	for _, v := range theirs {
		for _, w := range supportedVersions {
			if v == w && v > best {
				best = v
			}
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("%w: peer speaks %v, we speak %v", ErrNoCommonVersion, theirs, supportedVersions)
	}
	return best, nil
}

// Peer returns the node ID the peer proved in the TLS handshake; ok is false
// for an anonymous client.
func (l *Link) Peer() (id keys.NodeID, ok bool) { return l.peer, l.peerOK }

// Initiator reports whether this end dialled the link.
func (l *Link) Initiator() bool { return l.initiator }

// Version returns the link protocol version both ends agreed on.
func (l *Link) Version() uint16 { return l.version }

// RemoteAddr returns the peer's network address.
func (l *Link) RemoteAddr() net.Addr { return l.conn.RemoteAddr() }

func (l *Link) peerName() string {
	if l.peerOK {
		return l.peer.Short()
	}
	return "anonymous client"
}

// Send queues c to be written. It blocks while the send queue is full, until
// ctx ends (the error wraps ctx.Err()) or the link closes (ErrClosed); but
// if c's circuit has cells waiting for room (Enqueue), c waits behind them
// as Enqueue would have it, without blocking. On a nil error the link owns
// c and returns it to the pool once written; the caller must not touch it
// again. On an error the caller still owns c. A nil error means queued, not
// delivered: a link that breaks loses what it had queued.
func (l *Link) Send(ctx context.Context, c *onion.Cell) error {
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
	if q != nil && q.nwaiting.Load() > 0 && c.Cmd != onion.CellDestroy {
		return l.enqueueWaiting(c, q)
	}
	// The writer may be waiting for a Flush's leftovers to leave: make
	// sure it knows there is work before waiting for room.
	l.wake()
	if q != nil {
		q.queued.Add(1)
	}
	var err error
	select {
	case l.sendq <- queuedCell{c, q}:
		l.wake()
		return nil
	case <-l.closing:
		err = ErrClosed
	case <-ctx.Done():
		err = fmt.Errorf("link: send: queue full: %w", ctx.Err())
	}
	if q != nil {
		q.queued.Add(-1)
	}
	return err
}

// TrySend is Send without blocking: it reports whether c was queued (and the
// link now owns it). It returns false when the queue is full, c's circuit
// has cells waiting for room (Enqueue), the link is closed or c is invalid.
func (l *Link) TrySend(c *onion.Cell) bool {
	if !l.Queue(c) {
		return false
	}
	l.wake()
	return true
}

// Queue is TrySend without waking the writer: the caller must call Flush
// once it has queued what it had to send. A producer with several cells
// at hand writes them in one go that way, often from its own goroutine,
// instead of handing them to the writer goroutine cell by cell.
func (l *Link) Queue(c *onion.Cell) bool {
	if checkSend(c) != nil || l.isClosing.Load() {
		return false
	}
	return l.queue(c, l.circQueueOf(c.CircID))
}

// Forward is Queue for a Handler passing on a cell that arrived on from:
// from's reader flushes l once it has handled every cell it has at hand,
// before it next waits for its peer (FlushLater). It must be called from
// from's HandleCell. A relay's forwarding thus writes each burst of cells
// with the goroutine that read them, without waking another. When it
// returns false (the send queue is full, or the cell's circuit has cells
// waiting), Enqueue the cell: waiting for room would stop from's reader
// for the sake of l's peer.
func (l *Link) Forward(from *Link, c *onion.Cell) bool {
	if checkSend(c) != nil || l.isClosing.Load() || !l.queue(c, l.forwardQueue(from, c.CircID)) {
		return false
	}
	from.FlushLater(l)
	// A peer that keeps the reader busy must not hold back what it
	// forwarded for long.
	if from.forwardedCells++; from.forwardedCells >= batchCells {
		from.flushLater()
	}
	return true
}

// A Flusher finishes work that was put off until the end of a burst.
type Flusher interface {
	Flush()
}

// FlushLater has l's reader call f.Flush once it has handled every cell
// it has at hand, before it next waits for the peer; once however often it
// is asked before then. It must be called from l's HandleCell. Work a
// burst of cells causes, such as writing to another link or waking a
// stream's reader, is then done once per burst rather than per cell.
func (l *Link) FlushLater(f Flusher) {
	if l.bc == nil {
		// No read-ahead to tell when a burst ends.
		f.Flush()
		return
	}
	if !slices.Contains(l.flushers, f) {
		l.flushers = append(l.flushers, f)
	}
}

// flushLater calls what FlushLater put off. The reader calls it before it
// waits for the peer.
func (l *Link) flushLater() {
	for i, f := range l.flushers {
		f.Flush()
		l.flushers[i] = nil
	}
	l.flushers, l.forwardedCells = l.flushers[:0], 0
}

// Flush writes the queued cells, without ever waiting: if the writer
// goroutine (or another Flush) is writing already, or the connection does
// not take everything at once, it leaves the rest to the writer
// goroutine. Flushing never blocks the caller on a slow peer, so one
// link's reader can flush another link.
func (l *Link) Flush() {
	if l.bc == nil || l.bc.raw == nil || !l.wmu.TryLock() {
		// A connection that cannot be written without waiting is
		// the writer's.
		l.wake()
		return
	}
	done, err := true, error(nil)
	if !l.isClosing.Load() {
		done, err = l.writeQueued(false)
	}
	l.wmu.Unlock()
	if err != nil {
		l.closeWithError(err, false)
		return
	}
	if !done {
		l.wake()
	}
}

// wake makes sure the writer goroutine runs (again) soon.
func (l *Link) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// checkSend refuses what would make the writer fail: VERSIONS is sent by
// Establish only, and circuit ID 0 is the link's (SPEC.md §2.2).
func checkSend(c *onion.Cell) error {
	if c == nil || c.Cmd == onion.CellVersions || (c.CircID == 0 && c.Cmd != onion.CellPadding) {
		return ErrInvalidCell
	}
	return nil
}

// Close starts a clean shutdown: what is already queued is written (within
// CloseTimeout), close_notify is sent and the connection closed, and the
// Handler's LinkClosed is called with a nil error. Close never waits for any
// of it (use Wait), so it is safe to call from Handler callbacks. It is
// idempotent, the first call (of Close or CloseWithError) giving the reason,
// and always returns nil.
func (l *Link) Close() error {
	l.closeWithError(nil, true)
	return nil
}

// CloseWithError is Close with a reason, which LinkClosed and Wait report.
// Use it when the peer broke the protocol above the link (a CREATE in the
// wrong half, say).
func (l *Link) CloseWithError(err error) { l.closeWithError(err, true) }

// Abort closes the link at once with err as the reason, dropping what is
// queued instead of writing it out: for a peer that has stopped reading,
// whose queue would only wait out CloseTimeout. Like Close it never waits.
func (l *Link) Abort(err error) { l.closeWithError(err, false) }

// closeWithError starts the shutdown, once. drain says whether the writer
// should write out the queue; when it should not, both directions get a
// deadline in the past so that neither goroutine stays blocked in conn.
func (l *Link) closeWithError(err error, drain bool) {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if l.isClosing.Load() {
		return
	}
	l.closeErr, l.drain = err, drain
	if drain {
		l.drainDeadline = time.Now().Add(CloseTimeout)
		_ = l.conn.SetWriteDeadline(l.drainDeadline)
	} else {
		_ = l.conn.SetDeadline(time.Unix(1, 0))
	}
	l.isClosing.Store(true)
	close(l.closing)
}

// Done is closed once the link is closed: both goroutines have stopped and
// LinkClosed has returned.
func (l *Link) Done() <-chan struct{} { return l.done }

// Wait waits for Done and returns the reason the link closed, as given to
// LinkClosed. Calling it from a Handler callback deadlocks.
func (l *Link) Wait() error {
	<-l.done
	return l.closeErr
}

// Stats are a link's counters. Every cell on the wire is onion.CellSize
// bytes, VERSIONS and PADDING included.
type Stats struct {
	CellsIn, CellsOut uint64
	BytesIn, BytesOut uint64
	// Written counts the bytes the socket has taken, TLS framing
	// included: it moves as long as the peer reads. Over a connection
	// WrapConn did not wrap it is BytesOut.
	Written uint64
	// WaitingForPeer is true while the writer waits for room in the
	// socket: the peer has not read what it was sent, and its TCP
	// window is closed. A link whose Written stands still while this
	// holds has a peer that stopped reading, not a busy writer. Always
	// false over a connection WrapConn did not wrap.
	WaitingForPeer bool
	Queued         int // cells queued now, in the send queue and waiting
	Waiting        int // of which waiting in their circuits' queues (Enqueue)
	Circuits       int // circuit IDs in use, both ends
}

// Stats returns the link's counters.
func (l *Link) Stats() Stats {
	in, out := l.cellsIn.Load(), l.cellsOut.Load()
	waiting := int(l.nwaiting.Load())
	written, full := out*onion.CellSize, false
	if l.bc != nil {
		written, full = l.bc.written.Load(), l.bc.peerFull.Load()
	}
	return Stats{
		CellsIn: in, CellsOut: out,
		BytesIn: in * onion.CellSize, BytesOut: out * onion.CellSize,
		Written:        written,
		WaitingForPeer: full,
		Queued:         len(l.sendq) + waiting,
		Waiting:        waiting,
		Circuits:       l.Circuits(),
	}
}
