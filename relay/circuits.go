package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"veil/onion"
	"veil/relay/link"
	"veil/relay/stream"
	"veil/shard/store"
)

const (
	// extendTimeout bounds an EXTEND: dialling the next relay and its
	// CREATED.
	extendTimeout = 10 * time.Second
)

// hop is one side of a circuit at this relay: a link and the circuit's ID
// on it.
type hop struct {
	l  *link.Link
	id uint32
}

// relayCircuit is a circuit as one relay sees it.
type relayCircuit struct {
	prev  hop
	layer *onion.RelayLayer
	// early counts RELAY_EARLY cells, which only the prev side's reader
	// touches.
	early int
	reasm onion.Reassembler // likewise the prev side's reader only
	// opened is when the CREATE made the circuit, and fromClient says a
	// peer that is not a known relay sent it: this relay is the first
	// hop, and reapUnused destroys the circuit if it stays unused. Both
	// are set before the circuit is in the table and never change.
	opened     time.Time
	fromClient bool
	// limits is the memory governor's (memcap.go).
	limits circuitLimits

	mu sync.Mutex // guards the fields below and orders backward cells
	// next is the following hop once EXTEND succeeded; pending is the
	// hop being created and created receives its CREATED reply.
	next      hop
	pending   hop
	created   chan []byte
	extending bool
	dead      bool
	exit      *stream.Circuit // streams when this relay is the exit
	// forwardedBack counts the cells passed back towards the client, for
	// the test hook inject only.
	forwardedBack int
}

// circuitTable finds circuits by either of their hops.
type circuitTable struct {
	mu    sync.Mutex // guards byHop
	byHop map[hop]*relayCircuit
}

func (t *circuitTable) add(h hop, c *relayCircuit) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byHop[h] = c
}

func (t *circuitTable) get(h hop) *relayCircuit {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byHop[h]
}

func (t *circuitTable) remove(h hop) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.byHop, h)
}

// onLink returns every circuit with a hop on l.
func (t *circuitTable) onLink(l *link.Link) []*relayCircuit {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*relayCircuit
	for h, c := range t.byHop {
		if h.l == l {
			out = append(out, c)
		}
	}
	return out
}

// all returns every circuit (one entry per hop, so possibly twice).
func (t *circuitTable) all() []*relayCircuit {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*relayCircuit, 0, len(t.byHop))
	for _, c := range t.byHop {
		out = append(out, c)
	}
	return out
}

func (t *circuitTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byHop)
}

// engine is the relay's cell handling: it is the Handler of every link.
type engine struct {
	r      *Relay
	log    *slog.Logger
	ctx    context.Context // ends when the relay stops
	circs  circuitTable
	links  *linkPool
	exiter *exiter      // nil unless the relay exits
	store  *store.Store // nil unless the relay stores shards
	mem    memory
	stats  counters
	wg     sync.WaitGroup
	// draining is set when the relay drains (drain.go): new circuits
	// and streams are refused with HIBERNATING.
	draining atomic.Bool
	// forwarded counts the cells passed on to another hop, either way:
	// what a drain waits for at a middle (drain.go).
	forwarded atomic.Uint64
	// tamper, set only by tests, changes each cell this relay forwards
	// away from the client, as a malicious relay would.
	tamper func(*onion.Cell)
	// inject, set only by tests, makes this relay originate the relay
	// cells it returns towards the client, as a malicious relay would,
	// just before it passes on the forwarded-th cell (from 1) that came
	// back on a circuit.
	inject func(forwarded int) []onion.RelayCell
}

func newEngine(ctx context.Context, r *Relay) *engine {
	e := &engine{r: r, log: r.log, ctx: ctx, circs: circuitTable{byHop: map[hop]*relayCircuit{}}, tamper: r.tamperForward, inject: r.injectBackward}
	if r.cfg.Exit {
		e.exiter = newExiter(r.cfg.Policy())
	}
	e.store = r.shards
	e.links = newLinkPool(e, r.store.Identity(), r.log)
	e.links.onLink = e.mem.addLink
	e.stats.init()
	return e
}

// HandleCell is called by each link's reader, in cell order.
func (e *engine) HandleCell(l *link.Link, c *onion.Cell) {
	switch c.Cmd {
	case onion.CellCreate:
		e.handleCreate(l, c)
	case onion.CellCreated:
		e.handleCreated(l, c)
	case onion.CellRelay, onion.CellRelayEarly:
		e.handleRelay(l, c)
	case onion.CellDestroy:
		if circ := e.circs.get(hop{l, c.CircID}); circ != nil {
			e.destroy(circ, hop{l, c.CircID}, onion.DestroyDestroyed)
		}
		link.Release(c)
	default:
		link.Release(c)
	}
}

// LinkClosed destroys every circuit that used the link.
func (e *engine) LinkClosed(l *link.Link, err error) {
	e.links.forget(l)
	e.mem.removeLink(l)
	for _, circ := range e.circs.onLink(l) {
		e.destroy(circ, hopOn(circ, l), onion.DestroyDestroyed)
	}
}

func hopOn(c *relayCircuit, l *link.Link) hop {
	if c.prev.l == l {
		return c.prev
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next
}

func (e *engine) handleCreate(l *link.Link, c *onion.Cell) {
	defer link.Release(c)
	start := time.Now()
	if err := l.AcceptCircID(c.CircID); err != nil {
		// A CREATE in the wrong half or on a used ID breaks the protocol;
		// over the limit, the circuit is refused and the link stays.
		if errors.Is(err, link.ErrTooManyCircuits) {
			e.sendDestroy(l, c.CircID, onion.DestroyResourceLimit)
			return
		}
		l.CloseWithError(err)
		return
	}
	if e.refuseWhileDraining(l, c.CircID) {
		return
	}
	if e.refuseCreateAsleep(l, c.CircID) {
		return
	}
	if e.circs.len() >= 2*e.r.cfg.MaxCircuits {
		e.refuseCreate(l, c.CircID, refusedRelayFull)
		return
	}
	// A share of the table and a rate per peer, checked before the
	// handshake spends any CPU (createlimits.go).
	res, fromClient, ok := e.admitCreate(l, c.CircID)
	if !ok {
		return
	}
	hs, err := c.CreateHandshake()
	var reply []byte
	var keys *onion.HopKeys
	if err == nil {
		reply, keys, err = e.r.handshakes.Respond(hs)
	}
	var layer *onion.RelayLayer
	if err == nil {
		layer, err = onion.NewRelayLayer(keys)
		keys.Clear()
	}
	if err != nil {
		res.Cancel()
		e.stats.handshake(handshakeFailed)
		e.log.Debug("refused a CREATE", "err", err)
		e.sendDestroy(l, c.CircID, onion.DestroyProtocol)
		l.ReleaseCircID(c.CircID)
		return
	}
	circ := &relayCircuit{prev: hop{l, c.CircID}, layer: layer, opened: e.r.now(), fromClient: fromClient}
	res.Hold(circ)
	e.circs.add(circ.prev, circ)
	e.stats.created.Add(1)
	created, err := onion.NewCreatedCell(c.CircID, reply)
	if err == nil {
		err = e.send(l, created)
	}
	if err != nil {
		e.destroy(circ, circ.prev, onion.DestroyInternal)
		return
	}
	e.stats.handshake(handshakeOK)
	e.stats.createSeconds.Observe(time.Since(start).Seconds())
}

// handleRelay moves a RELAY cell one hop: forward (from the client side)
// it removes this relay's layer and passes the cell on or handles it;
// backward it adds this relay's layer.
func (e *engine) handleRelay(l *link.Link, c *onion.Cell) {
	h := hop{l, c.CircID}
	circ := e.circs.get(h)
	if circ == nil {
		link.Release(c)
		return
	}
	if h != circ.prev {
		e.relayBackward(l, circ, c)
		return
	}
	if c.Cmd == onion.CellRelayEarly {
		// SPEC.md §5.5, §7.6: at most MaxRelayEarly per circuit.
		if circ.early++; circ.early > onion.MaxRelayEarly {
			link.Release(c)
			e.destroy(circ, hop{}, onion.DestroyProtocol)
			return
		}
	}
	recognized, tag, err := circ.layer.DecryptForward(c.Cmd, c.Payload[:])
	if err != nil {
		link.Release(c)
		e.log.Info("circuit destroyed: a cell failed authentication", "err", err)
		e.destroy(circ, hop{}, onion.DestroyTampered)
		return
	}
	if !recognized {
		circ.mu.Lock()
		next := circ.next
		circ.mu.Unlock()
		if next.l == nil {
			link.Release(c)
			e.destroy(circ, hop{}, onion.DestroyProtocol)
			return
		}
		c.CircID = next.id
		if e.tamper != nil {
			e.tamper(c)
		}
		if err := e.forward(l, next.l, c); err != nil {
			e.destroy(circ, next, onion.DestroyDestroyed)
		}
		return
	}
	var rc onion.RelayCell
	err = onion.ParseRelayBody(onion.RelayBody(c.Payload[:]), &rc)
	var msg onion.RelayMessage
	var complete bool
	if err == nil {
		msg, complete, err = circ.reasm.Add(&rc)
	}
	if err != nil {
		link.Release(c)
		e.destroy(circ, hop{}, onion.DestroyProtocol)
		return
	}
	if !complete {
		link.Release(c)
		return
	}
	if msg.Cmd != onion.RelayData {
		// The message may alias the cell, which is released below; copy
		// what might outlive it (EXTEND and BEGIN go to goroutines).
		// DATA, nearly every cell, is copied by HandleData into the
		// stream's queue.
		msg.Body = append([]byte(nil), msg.Body...)
	}
	err = e.handleMessage(circ, msg, tag, c.Cmd == onion.CellRelayEarly)
	link.Release(c)
	if err != nil {
		e.log.Debug("circuit destroyed", "err", err)
		e.destroy(circ, hop{}, onion.DestroyProtocol)
	}
}

// relayBackward adds this relay's layer to a cell that arrived on from,
// the next hop's link.
func (e *engine) relayBackward(from *link.Link, circ *relayCircuit, c *onion.Cell) {
	circ.mu.Lock()
	defer circ.mu.Unlock()
	if circ.dead {
		link.Release(c)
		return
	}
	if c.Cmd != onion.CellRelay {
		// Backward cells are RELAY (SPEC.md §7.6): a next hop that
		// sends RELAY_EARLY towards the client is marking the circuit.
		link.Release(c)
		go e.destroy(circ, hop{}, onion.DestroyProtocol)
		return
	}
	if e.inject != nil {
		circ.forwardedBack++
		for _, rc := range e.inject(circ.forwardedBack) {
			e.originateLocked(circ, &rc)
		}
	}
	if err := circ.layer.EncryptBackward(c.Cmd, c.Payload[:]); err != nil {
		link.Release(c)
		go e.destroy(circ, circ.prev, onion.DestroyInternal)
		return
	}
	c.CircID = circ.prev.id
	if err := e.forward(from, circ.prev.l, c); err != nil {
		go e.destroy(circ, circ.prev, onion.DestroyDestroyed)
	}
}

// originateLocked sends rc towards the client as this relay's own cell,
// flags and all: the test hook inject uses it to play a malicious relay.
func (e *engine) originateLocked(circ *relayCircuit, rc *onion.RelayCell) {
	c := link.NewCell()
	if err := onion.MarshalRelayBody(onion.RelayBody(c.Payload[:]), rc); err != nil {
		link.Release(c)
		return
	}
	if _, err := circ.layer.EncryptBackwardOrigin(onion.CellRelay, c.Payload[:]); err != nil {
		link.Release(c)
		return
	}
	c.CircID, c.Cmd = circ.prev.id, onion.CellRelay
	if !circ.prev.l.TrySend(c) {
		link.Release(c)
	}
}

// SendRelay originates a relay message towards the client: the exit's
// streams and this relay's answers use it. It is the stream.Sender of the
// circuit's exit streams.
func (circ *relayCircuit) sendRelay(e *engine, cmd onion.RelayCmd, streamID uint16, data []byte) ([onion.TagLen]byte, error) {
	var tag [onion.TagLen]byte
	c := link.NewCell()
	rc := onion.RelayCell{Cmd: cmd, StreamID: streamID, Data: data}
	if err := onion.MarshalRelayBody(onion.RelayBody(c.Payload[:]), &rc); err != nil {
		link.Release(c)
		return tag, err
	}
	circ.mu.Lock()
	defer circ.mu.Unlock()
	if circ.dead {
		link.Release(c)
		return tag, stream.ErrEnded
	}
	tag, err := circ.layer.EncryptBackwardOrigin(onion.CellRelay, c.Payload[:])
	if err != nil {
		link.Release(c)
		return tag, err
	}
	c.CircID, c.Cmd = circ.prev.id, onion.CellRelay
	if cmd == onion.RelayData && circ.prev.l.Queue(c) {
		return tag, nil // flushed by the stream (stream.Flusher)
	}
	if err := e.send(circ.prev.l, c); err != nil {
		// The layer's counter has moved past a cell the client will
		// never get, so every later cell would fail its check there
		// and look tampered with: the circuit is over (SPEC.md §5.1).
		go e.destroy(circ, hop{}, onion.DestroyInternal)
		return tag, err
	}
	return tag, nil
}

// exitSender adapts a circuit to stream.Sender.
type exitSender struct {
	e    *engine
	circ *relayCircuit
}

func (s exitSender) SendRelay(_ context.Context, cmd onion.RelayCmd, sid uint16, data []byte) ([onion.TagLen]byte, error) {
	return s.circ.sendRelay(s.e, cmd, sid, data)
}

// Flush writes the DATA cells SendRelay queued (stream.Flusher).
func (s exitSender) Flush() { s.circ.prev.l.Flush() }

// forward queues a cell that arrived on from to go out on to. It is
// written once from's reader has handled the cells it has at hand, by
// that goroutine when to is idle. When to's send queue is full the cell
// waits in its circuit's queue on to (send): from's reader never waits
// for another link's peer.
func (e *engine) forward(from, to *link.Link, c *onion.Cell) error {
	e.forwarded.Add(1)
	if to.Forward(from, c) {
		return nil
	}
	return e.send(to, c)
}

// send queues a cell and never waits (G9). A cell that finds the link's
// send queue full waits in its circuit's own queue on the link
// (link.Enqueue), not in the caller: a reader that waited here for room
// would stop every circuit on its own link for the sake of one peer that
// does not read. Destroying the circuit whenever the queue is full instead
// would kill honest bulk transfers at every burst, since a circuit's window
// lets 4 MiB be in flight, four times a default send queue; with the
// circuit queue a relay forwards as fast as before (the send queue is
// used as long as it has room) and what waits is bounded by the windows
// (SPEC.md §9). A circuit whose sender ignores them reaches
// link.MaxCircuitQueue: it is destroyed (RESOURCELIMIT, both ways) and
// send returns nil, the cell dropped with it. The memory governor charges
// what waits to its circuit (memcap.go).
func (e *engine) send(l *link.Link, c *onion.Cell) error {
	err := l.Enqueue(c)
	if err == nil {
		return nil
	}
	id := c.CircID
	link.Release(c)
	if errors.Is(err, link.ErrCircuitQueueFull) {
		e.overQueued(l, id)
		return nil
	}
	return err
}

func (e *engine) sendDestroy(l *link.Link, id uint32, reason onion.DestroyReason) {
	c, err := onion.NewDestroyCell(id, reason)
	if err != nil {
		return
	}
	// Best effort: a DESTROY that finds the queue full is dropped; the
	// peer's circuit then ends with the link or its own timeouts.
	if !l.TrySend(c) {
		return
	}
}

// destroy tears a circuit down once: DESTROY goes to the side it did not
// come from (from is the hop the failure came through, or the zero hop
// when this relay decided), and its exit streams end.
func (e *engine) destroy(circ *relayCircuit, from hop, reason onion.DestroyReason) {
	circ.mu.Lock()
	if circ.dead {
		circ.mu.Unlock()
		return
	}
	circ.dead = true
	e.stats.destroyedFor(reason)
	next, exit := circ.next, circ.exit
	if next.l == nil {
		next = circ.pending
	}
	circ.mu.Unlock()

	// The side that told us gets nothing back; the other side learns only
	// that the circuit was destroyed further along (SPEC.md §2.4), except
	// the neighbour towards the client of the relay that decided, which
	// gets the reason. Away from the client it is always DESTROYED: a
	// reason sent on towards the exit would be a signal a guard could
	// send a colluding exit (break a cell, and the middle says TAMPERED).
	for _, h := range []hop{circ.prev, next} {
		if h.l == nil || h == from {
			continue
		}
		r := reason
		if from.l != nil || h != circ.prev {
			r = onion.DestroyDestroyed
		}
		e.sendDestroy(h.l, h.id, r)
	}
	for _, h := range []hop{circ.prev, next} {
		if h.l != nil {
			e.circs.remove(h)
			h.l.ReleaseCircID(h.id)
		}
	}
	if exit != nil {
		exit.Fail(fmt.Errorf("circuit destroyed: %v", reason))
	}
}
