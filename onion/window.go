package onion

import "crypto/subtle"

// Flow control (SPEC.md §9), authenticated in the spirit of Tor's proposal
// 289. Only DATA cells count. A sender may have at most a window of cells
// unacknowledged; the receiver grants Increment more with each SENDME, and
// each SENDME must echo the endpoint-layer GCM tag of the cell that
// completed the increment, so a peer cannot ask for data it has not read
// (which would let it inflate queues or amplify traffic).
const (
	// CircWindowStart is 4 MiB of 4 KiB cells: twice the stream window, so
	// two busy streams can fill a circuit.
	CircWindowStart = 1024
	// CircWindowIncrement keeps SENDMEs at one per 64 cells (256 KiB),
	// cheap in the reverse direction while letting the window refill early.
	CircWindowIncrement = 64
	// StreamWindowStart bounds what one stream can have in flight (2 MiB)
	// so one slow reader cannot take a whole circuit's window. It covers
	// 200 MB/s over the ~10 ms a loaded three-relay path takes to return a
	// SENDME: with 1 MiB a single download on the 2-core testnet waited on
	// its window and moved 5-16 % less in paired runs (README, Performance).
	StreamWindowStart = 512
	// StreamWindowIncrement matches the circuit increment.
	StreamWindowIncrement = 64
)

// tagRing is a fixed-capacity FIFO of tags; it never allocates after
// construction.
type tagRing struct {
	tags       [][TagLen]byte
	head, size int
}

func (q *tagRing) push(t [TagLen]byte) {
	if q.size == len(q.tags) {
		panic("onion: internal error: window tag ring overflow")
	}
	q.tags[(q.head+q.size)%len(q.tags)] = t
	q.size++
}

func (q *tagRing) pop() [TagLen]byte {
	t := q.tags[q.head]
	q.head = (q.head + 1) % len(q.tags)
	q.size--
	return t
}

func checkWindowParams(start, increment int) {
	if increment < 1 || start < increment || start%increment != 0 {
		panic("onion: internal error: window start must be a positive multiple of increment")
	}
}

// SendWindow is the sender's side of one window (a circuit hop or a stream).
type SendWindow struct {
	window, increment int
	sinceTag          int     // cells sent since the last recorded tag
	pending           tagRing // tags the next SENDMEs must carry, oldest first
}

// NewSendWindow returns a window of start cells replenished by increment,
// which must divide start.
func NewSendWindow(start, increment int) *SendWindow {
	checkWindowParams(start, increment)
	return &SendWindow{window: start, increment: increment,
		pending: tagRing{tags: make([][TagLen]byte, start/increment)}}
}

// CanSend reports whether another DATA cell may be sent.
func (w *SendWindow) CanSend() bool { return w.window > 0 }

// Window returns how many more DATA cells may be sent.
func (w *SendWindow) Window() int { return w.window }

// Sent records a DATA cell sent with endpoint tag tag. Calling it when
// CanSend is false is a bug in the caller.
func (w *SendWindow) Sent(tag [TagLen]byte) {
	if w.window <= 0 {
		panic("onion: internal error: sent past the flow-control window")
	}
	w.window--
	w.sinceTag++
	if w.sinceTag == w.increment {
		w.sinceTag = 0
		w.pending.push(tag) // cannot overflow: see SPEC.md §9
	}
}

// Ack applies a SENDME carrying tag. It must match the oldest pending tag:
// a SENDME for cells not yet sent, or with any other tag, is a protocol
// violation.
func (w *SendWindow) Ack(tag [TagLen]byte) error {
	if w.pending.size == 0 {
		return violationf("onion: SENDME acknowledges cells not yet sent")
	}
	if subtle.ConstantTimeCompare(w.pending.tags[w.pending.head][:], tag[:]) != 1 {
		return violationf("onion: SENDME carries the wrong tag")
	}
	w.pending.pop()
	w.window += w.increment
	return nil
}

// RecvWindow is the receiver's side of one window. Arrived counts a cell
// against the peer's window when it arrives; Delivered frees it once the
// application has consumed it, and says when to send a SENDME. A caller
// that hands cells on at once calls Received, which does both.
type RecvWindow struct {
	window, increment int
	sinceTag          int     // cells arrived since the last increment boundary
	undelivered       int     // arrived, not yet delivered
	delivered         int     // delivered since the last SENDME
	ackTags           tagRing // tags of increment-th cells awaiting delivery
}

// NewRecvWindow returns a window of start cells replenished by increment,
// which must divide start; both must match the peer's SendWindow.
func NewRecvWindow(start, increment int) *RecvWindow {
	checkWindowParams(start, increment)
	return &RecvWindow{window: start, increment: increment,
		ackTags: tagRing{tags: make([][TagLen]byte, start/increment)}}
}

// Arrived records a DATA cell with endpoint tag tag. It fails if the peer
// sent past the window.
func (w *RecvWindow) Arrived(tag [TagLen]byte) error {
	if w.window <= 0 {
		return violationf("onion: peer overran the flow-control window")
	}
	w.window--
	w.undelivered++
	w.sinceTag++
	if w.sinceTag == w.increment {
		w.sinceTag = 0
		w.ackTags.push(tag) // at most start/increment pending: SPEC.md §9
	}
	return nil
}

// Delivered records that the oldest undelivered cell was consumed. When it
// completes an increment it returns sendme with the tag the SENDME must
// carry, and the window is replenished: send the SENDME right away.
// Calling it with nothing undelivered is a bug in the caller.
func (w *RecvWindow) Delivered() (sendme bool, ackTag [TagLen]byte) {
	if w.undelivered == 0 {
		panic("onion: internal error: delivered a cell that never arrived")
	}
	w.undelivered--
	w.delivered++
	if w.delivered < w.increment {
		return false, ackTag
	}
	w.delivered = 0
	w.window += w.increment
	return true, w.ackTags.pop()
}

// Received is Arrived followed by Delivered, for a cell handed on at once.
func (w *RecvWindow) Received(tag [TagLen]byte) (sendme bool, ackTag [TagLen]byte, err error) {
	if err := w.Arrived(tag); err != nil {
		return false, ackTag, err
	}
	sendme, ackTag = w.Delivered()
	return sendme, ackTag, nil
}
