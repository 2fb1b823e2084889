package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"veil/directory"
	"veil/onion"
	"veil/relay/link"
	"veil/relay/stream"
)

// ErrCircuitClosed is returned for a circuit that was destroyed.
var ErrCircuitClosed = errors.New("client: circuit closed")

// A hop that hangs (SIGSTOP, a wedged process) keeps its TCP connections
// open, so no link error ever says it is gone; the circuit just goes
// quiet. A circuit that is owed an answer (it sent something since it
// last heard anything: a BEGIN, DATA, a SENDME) and hears nothing for
// silentAfter asks every hop for a PONG (onion/SPEC.md §7.8). Any cell
// from a hop answers for it and every hop before it (a SENDME from a
// congested exit answers for the whole path), and a guard that sends
// anything on its link, on any circuit, is not hung.
//
// A hop not heard from pongTimeout after the PING makes the circuit
// suspect: it takes no new stream, and the streams waiting for CONNECTED on
// it are tried on another circuit at once; the next cell from the path
// undoes it. Only
// a hop silent for hungAfter gets the circuit torn down, with every other
// circuit through that relay: a loaded machine can delay an honest PONG by
// seconds, and tearing down an honest path costs a user what it carried,
// while a stream waiting to attach loses nothing by going elsewhere.
const (
	// silentAfter is well above a round trip through a loaded network
	// (tens of ms) and well under what a user waits before giving up.
	silentAfter = time.Second
	// pongTimeout leaves a PONG time to cross a loaded machine; a new
	// stream still gets a working circuit within 5 s of a hang.
	pongTimeout = 3 * time.Second
	// hungAfter is the silence, counted from the PING, that tears the
	// circuit down: Tor's CircuitStreamTimeout, the longest a stream
	// there waits on a silent circuit before it is moved.
	hungAfter = 10 * time.Second
	// watchTick is how often a circuit's watcher looks.
	watchTick = 250 * time.Millisecond
)

// Circuit is a circuit this client built.
type Circuit struct {
	l     *link.Link
	id    uint32
	hops  []directory.Entry
	built time.Time

	// mu orders cells towards the exit: crypto and queueing in wire order.
	mu     sync.Mutex
	crypto onion.ClientCrypto
	// sent counts the relay cells sent, under mu: the first
	// onion.MaxRelayEarly go as RELAY_EARLY, whatever they carry.
	sent int
	// broken, set under mu, says a cell was encrypted but never sent: the
	// hops' counters have moved past it, so no later cell could pass.
	broken error
	// rmu guards the backward half of crypto against AddHop.
	rmu sync.Mutex
	// reasm has one reassembler per hop, so that no hop can begin a
	// message that another hop's cells complete (SPEC.md §8): the link
	// reader's only.
	reasm [onion.MaxHops]onion.Reassembler

	streams *stream.Circuit

	// Lock order: stateMu, then the streams' lock (streams.mu), then mu.
	// A stream's Write holds the streams' lock while it sends, so
	// nothing on the send path may take stateMu: sendRelay reads dead
	// through deadErr instead. Taking stateMu under the streams' lock
	// once hung every proxy stream that shared a circuit.
	stateMu  sync.Mutex // guards the fields below
	dead     error
	deadErr  atomic.Pointer[error] // dead, for readers that must not lock
	reply    chan []byte           // CREATED or EXTENDED reply for the build
	opening  map[uint16]chan beginResult
	nextSID  uint16
	closedCh chan struct{}
	// pongs is non-nil while a PING to every hop is out: which hops were
	// heard from since it was sent at pingSent.
	pongs     []bool
	pingNonce uint64
	pingSent  time.Time
	// pingLinkIn is the link's count of cells read when the PING went
	// out: a guard that sent anything since is not hung.
	pingLinkIn uint64
	// pinging says pongs is non-nil, for the link reader to check
	// without taking stateMu for every cell.
	pinging atomic.Bool
	// suspect says a hop has not answered the PING that is out for
	// pongTimeout: the circuit takes no new stream until it is heard.
	suspect atomic.Bool

	// owedSince is when the circuit first sent something after it last
	// heard anything (unix nanoseconds), 0 when it is owed nothing.
	owedSince atomic.Int64
	// pongWait is a measurement's PING waiting for its PONG (measure.go).
	pongWait atomic.Pointer[pongWaiter]
	// ctx ends when the circuit fails, so that a send blocked on a full
	// link towards a hung guard gives up and releases the streams' lock.
	ctx    context.Context
	cancel context.CancelFunc
}

type beginResult struct {
	connected bool
	reason    onion.EndReason
}

// Hops returns the relays of the circuit, guard first.
func (c *Circuit) Hops() []directory.Entry { return c.hops }

// Built returns when the circuit was completed.
func (c *Circuit) Built() time.Time { return c.built }

// Err returns why the circuit is gone, or nil while it is usable. It
// takes no lock, so any path may call it.
func (c *Circuit) Err() error {
	if p := c.deadErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Done is closed when the circuit is destroyed.
func (c *Circuit) Done() <-chan struct{} { return c.closedCh }

// sendRelay sends one relay cell to hop target, returning its endpoint tag.
// The circuit's first onion.MaxRelayEarly cells go as RELAY_EARLY whatever
// they carry (onion/SPEC.md §7.6); a cell that must be RELAY_EARLY (early:
// EXTEND) fails once they are spent.
func (c *Circuit) sendRelay(ctx context.Context, cmd onion.RelayCmd, sid uint16, data []byte, target int, early bool) ([onion.TagLen]byte, error) {
	var tag [onion.TagLen]byte
	if err := c.Err(); err != nil {
		return tag, err
	}
	cell := link.NewCell()
	rc := onion.RelayCell{Cmd: cmd, StreamID: sid, Data: data}
	if err := onion.MarshalRelayBody(onion.RelayBody(cell.Payload[:]), &rc); err != nil {
		link.Release(cell)
		return tag, err
	}
	if ctx.Done() == nil {
		ctx = c.ctx // the caller cannot cancel: the circuit's end does
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		link.Release(cell)
		return tag, c.broken
	}
	cell.CircID, cell.Cmd = c.id, onion.CellRelay
	if c.sent < onion.MaxRelayEarly {
		cell.Cmd = onion.CellRelayEarly
	} else if early {
		link.Release(cell)
		return tag, fmt.Errorf("client: %v after the circuit's %d RELAY_EARLY cells", cmd, onion.MaxRelayEarly)
	}
	tag, err := c.crypto.EncryptForward(cell.Cmd, cell.Payload[:], target)
	if err != nil {
		link.Release(cell)
		return tag, err
	}
	c.sent++
	if cmd != onion.RelayPing && cmd != onion.RelayDrop && c.owedSince.Load() == 0 {
		c.owedSince.CompareAndSwap(0, time.Now().UnixNano())
	}
	if cmd == onion.RelayData && c.l.Queue(cell) {
		return tag, nil // flushed by the stream (stream.Flusher)
	}
	if err := c.l.Send(ctx, cell); err != nil {
		link.Release(cell)
		// The cell used its place in the hops' counters: the circuit
		// is over. fail takes stateMu, which the lock order forbids
		// under mu, so it runs apart.
		c.broken = fmt.Errorf("client: circuit broken by a failed send: %w", err)
		go c.CloseWith(c.broken)
		return tag, err
	}
	return tag, nil
}

// checkAlive is the watcher's look at the circuit (see silentAfter). It
// sends a PING to every hop when the circuit has been owed an answer too
// long; once the PING is pongTimeout old with a hop not heard from, it
// makes the circuit suspect and returns that hop with hung false; once it
// is hungAfter old, it returns the hop with hung true. Otherwise -1.
func (c *Circuit) checkAlive(now time.Time) (silent int, hung bool) {
	c.stateMu.Lock()
	if c.pongs != nil {
		waited := now.Sub(c.pingSent)
		if waited < pongTimeout {
			c.stateMu.Unlock()
			return -1, false
		}
		silent = slices.Index(c.pongs, false)
		if silent == 0 && c.l.Stats().CellsIn != c.pingLinkIn {
			// The guard speaks on other circuits: not hung. A new
			// PING follows if the circuit is still owed an answer.
			c.pongs = nil
			c.pinging.Store(false)
			c.stateMu.Unlock()
			return -1, false
		}
		if !c.suspect.Swap(true) {
			// Streams waiting to attach go elsewhere now.
			for sid, ch := range c.opening {
				ch <- beginResult{reason: onion.EndDestroy}
				delete(c.opening, sid)
			}
		}
		if waited < hungAfter {
			c.stateMu.Unlock()
			return silent, false
		}
		c.pongs = nil
		c.pinging.Store(false)
		c.stateMu.Unlock()
		return silent, true
	}
	owed := c.owedSince.Load()
	if owed == 0 || now.Sub(time.Unix(0, owed)) < silentAfter || c.dead != nil {
		c.stateMu.Unlock()
		return -1, false
	}
	c.pingNonce++
	c.pingSent = now
	c.pingLinkIn = c.l.Stats().CellsIn
	c.pongs = make([]bool, c.crypto.Hops())
	c.pinging.Store(true)
	m := onion.Ping{Nonce: c.pingNonce}
	c.stateMu.Unlock()
	body, _ := m.Marshal()
	ctx, cancel := context.WithTimeout(c.ctx, pongTimeout)
	defer cancel()
	for hop := range c.crypto.Hops() {
		// A send that fails (a full link to a hung guard) is answered
		// by the missing PONG.
		if _, err := c.sendRelay(ctx, onion.RelayPing, 0, body, hop, false); err != nil {
			break
		}
	}
	return -1, false
}

// heardFrom records, while a PING is out, that a cell came back from hop:
// a PONG, or anything else, proves that hop and every hop before it alive
// (a SENDME from a congested exit answers for the whole path).
func (c *Circuit) heardFrom(hop int) {
	if !c.pinging.Load() {
		return
	}
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	for i := range min(hop+1, len(c.pongs)) {
		c.pongs[i] = true
	}
	if c.pongs != nil && !slices.Contains(c.pongs, false) {
		c.pongs = nil // every hop is alive
		c.pinging.Store(false)
		c.suspect.Store(false)
	}
}

// exitSender sends the circuit's stream cells to its last hop.
type exitSender struct{ c *Circuit }

func (s exitSender) SendRelay(ctx context.Context, cmd onion.RelayCmd, sid uint16, data []byte) ([onion.TagLen]byte, error) {
	return s.c.sendRelay(ctx, cmd, sid, data, len(s.c.hops)-1, false)
}

// Flush writes the DATA cells SendRelay queued (stream.Flusher).
func (s exitSender) Flush() { s.c.l.Flush() }

// fail destroys the circuit locally, once.
func (c *Circuit) fail(err error) {
	c.stateMu.Lock()
	if c.dead != nil {
		c.stateMu.Unlock()
		return
	}
	c.dead = err
	c.deadErr.Store(&err)
	for sid, ch := range c.opening {
		ch <- beginResult{reason: onion.EndDestroy}
		delete(c.opening, sid)
	}
	close(c.closedCh)
	c.stateMu.Unlock()
	c.cancel()
	c.streams.Fail(err)
}

// Close destroys the circuit.
func (c *Circuit) Close() { c.CloseWith(ErrCircuitClosed) }

// CloseWith destroys the circuit, giving err as the reason to its streams.
func (c *Circuit) CloseWith(err error) {
	if c.Err() != nil {
		return
	}
	if d, err := onion.NewDestroyCell(c.id, onion.DestroyRequested); err == nil && !c.l.TrySend(d) {
		link.Release(d)
	}
	c.fail(err)
}

// Dial opens a stream through the circuit's exit to dest and waits for
// CONNECTED. On END it returns an *EndError carrying the reason, which the
// SOCKS server turns into its reply.
func (c *Circuit) Dial(ctx context.Context, b onion.Begin) (*stream.Stream, error) {
	body, err := b.Marshal()
	if err != nil {
		return nil, err
	}
	return c.open(ctx, onion.RelayBegin, body)
}

// DialStore opens a stream to the shard store of the circuit's last hop
// (onion/SPEC.md §7.7); wrap it in a shard/store Client.
func (c *Circuit) DialStore(ctx context.Context) (*stream.Stream, error) {
	return c.open(ctx, onion.RelayBeginStore, nil)
}

// open sends cmd with body on a new stream and waits for CONNECTED.
func (c *Circuit) open(ctx context.Context, cmd onion.RelayCmd, body []byte) (*stream.Stream, error) {
	c.stateMu.Lock()
	if c.dead != nil {
		c.stateMu.Unlock()
		return nil, c.dead
	}
	var sid uint16
	for range 1 << 16 {
		c.nextSID++
		if c.nextSID != 0 && c.opening[c.nextSID] == nil && c.streams.Stream(c.nextSID) == nil {
			sid = c.nextSID
			break
		}
	}
	if sid == 0 {
		c.stateMu.Unlock()
		return nil, errors.New("client: no free stream ID")
	}
	ch := make(chan beginResult, 1)
	c.opening[sid] = ch
	c.stateMu.Unlock()
	// The stream is registered before BEGIN goes out, so DATA right after
	// CONNECTED finds it.
	s, err := c.streams.Open(sid)
	if err != nil {
		c.forgetOpening(sid)
		return nil, err
	}
	if _, err := (exitSender{c}).SendRelay(ctx, cmd, sid, body); err != nil {
		c.forgetOpening(sid)
		s.CloseWith(onion.EndMisc)
		return nil, err
	}
	select {
	case r := <-ch:
		if r.connected {
			return s, nil
		}
		s.CloseWith(onion.EndMisc)
		return nil, &EndError{Reason: r.reason}
	case <-ctx.Done():
		c.forgetOpening(sid)
		s.CloseWith(onion.EndTimeout)
		return nil, ctx.Err()
	}
}

func (c *Circuit) forgetOpening(sid uint16) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	delete(c.opening, sid)
}

// EndError is a stream the exit refused or ended.
type EndError struct{ Reason onion.EndReason }

func (e *EndError) Error() string {
	return fmt.Sprintf("client: stream ended by the exit: %v", e.Reason)
}

// handleBackward takes a RELAY cell from the guard: the link reader calls
// it in order.
func (c *Circuit) handleBackward(cell *onion.Cell) {
	if c.owedSince.Load() != 0 {
		c.owedSince.Store(0) // the path is alive
	}
	if cell.Cmd != onion.CellRelay {
		// Backward cells are RELAY (SPEC.md §7.6): a RELAY_EARLY one
		// is a relay marking the circuit.
		link.Release(cell)
		c.Close()
		c.fail(fmt.Errorf("client: protocol: %v towards the client", cell.Cmd))
		return
	}
	c.rmu.Lock()
	origin, tag, err := c.crypto.DecryptBackward(cell.Cmd, cell.Payload[:])
	c.rmu.Unlock()
	if err != nil {
		link.Release(cell)
		c.Close()
		c.fail(fmt.Errorf("client: %w", err))
		return
	}
	c.heardFrom(origin)
	var rc onion.RelayCell
	err = onion.ParseRelayBody(onion.RelayBody(cell.Payload[:]), &rc)
	if err == nil && rc.StreamID != 0 && origin != c.crypto.Hops()-1 {
		// Only a stream's end speaks for it: a guard or middle that
		// does is attacking the stream (SPEC.md §10).
		err = fmt.Errorf("%v on stream %d from hop %d, not the exit", rc.Cmd, rc.StreamID, origin)
	}
	var m onion.RelayMessage
	var complete bool
	if err == nil {
		m, complete, err = c.reasm[origin].Add(&rc)
	}
	if err == nil && complete {
		if m.Cmd != onion.RelayData {
			// The message may alias the cell, which is released below;
			// copy what might outlive it. DATA, nearly every cell, is
			// copied by HandleData into the stream's queue.
			m.Body = append([]byte(nil), m.Body...)
		}
		err = c.handleMessage(origin, m, tag)
	}
	link.Release(cell)
	if err != nil {
		c.Close()
		c.fail(fmt.Errorf("client: protocol: %w", err))
	}
}

func (c *Circuit) handleMessage(origin int, m onion.RelayMessage, tag [onion.TagLen]byte) error {
	last := c.crypto.Hops() - 1
	switch m.Cmd {
	case onion.RelayExtended:
		c.stateMu.Lock()
		ch := c.reply
		c.reply = nil
		c.stateMu.Unlock()
		if ch == nil || origin != last {
			return errors.New("unexpected EXTENDED")
		}
		ext, err := onion.ParseExtended(m.Body)
		if err != nil {
			return err
		}
		ch <- ext.Handshake
		return nil
	case onion.RelayDrop:
		return nil
	case onion.RelayPong:
		p, err := onion.ParsePing(m.Body) // heardFrom took it already
		if err == nil {
			c.pongArrived(p.Nonce)
		}
		return err
	}
	if origin != last {
		return fmt.Errorf("%v from hop %d, not the exit", m.Cmd, origin)
	}
	switch m.Cmd {
	case onion.RelayConnected:
		if !c.resolveOpening(m.StreamID, beginResult{connected: true}) {
			// A stream this end gave up on (its attach timed out) was
			// connected after all: end it, or the exit would keep its
			// connection until the destination closes it.
			end := onion.End{Reason: onion.EndTimeout}
			body, _ := end.Marshal()
			(exitSender{c}).SendRelay(c.ctx, onion.RelayEnd, m.StreamID, body)
		}
	case onion.RelayEnd:
		end, err := onion.ParseEnd(m.Body)
		if err != nil {
			return err
		}
		if !c.resolveOpening(m.StreamID, beginResult{reason: end.Reason}) {
			c.streams.HandleEnd(m.StreamID, end.Reason)
		}
	case onion.RelayData:
		_, err := c.streams.HandleData(m.StreamID, tag, m.Body)
		c.l.FlushLater(c.streams)
		return err
	case onion.RelaySendme:
		return c.streams.HandleSendme(m.StreamID, m.Body)
	case onion.RelayFin:
		c.streams.HandleFin(m.StreamID)
	default:
		return fmt.Errorf("unexpected %v", m.Cmd)
	}
	return nil
}

func (c *Circuit) resolveOpening(sid uint16, r beginResult) bool {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	ch := c.opening[sid]
	if ch == nil {
		return false
	}
	delete(c.opening, sid)
	ch <- r
	return true
}

// extendTo runs one hop's handshake: CREATE on the link for the first hop,
// EXTEND in RELAY_EARLY through the circuit for the others.
func (c *Circuit) extendTo(ctx context.Context, e directory.Entry) error {
	d := e.Descriptor
	hs, err := onion.NewClientHandshake(d.NodeID(), d.OnionCert.OnionKey, nil)
	if err != nil {
		return err
	}
	defer hs.Clear()
	ch := make(chan []byte, 1)
	c.stateMu.Lock()
	c.reply = ch
	c.stateMu.Unlock()
	if c.crypto.Hops() == 0 {
		cell, err := onion.NewCreateCell(c.id, hs.Request())
		if err != nil {
			return err
		}
		if err := c.l.Send(ctx, cell); err != nil {
			return err
		}
	} else {
		ext := onion.Extend{NodeID: d.NodeID(), AddrPort: d.ORAddr, Handshake: hs.Request()}
		body, err := ext.Marshal()
		if err != nil {
			return err
		}
		if _, err := c.sendRelay(ctx, onion.RelayExtend, 0, body, c.crypto.Hops()-1, true); err != nil {
			return err
		}
	}
	var reply []byte
	select {
	case reply = <-ch:
	case <-c.closedCh:
		return c.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
	keys, err := hs.Finish(reply)
	if err != nil {
		return fmt.Errorf("hop %s: %w", d.NodeID().Short(), err)
	}
	defer keys.Clear()
	c.mu.Lock()
	c.rmu.Lock()
	err = c.crypto.AddHop(keys)
	c.rmu.Unlock()
	c.mu.Unlock()
	return err
}
