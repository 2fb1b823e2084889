package relay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"veil/onion"
	"veil/relay/internal/splice"
	"veil/relay/link"
	"veil/relay/stream"
	"veil/shard/store"
)

// errNotEarly: an EXTEND must come in RELAY_EARLY cells (SPEC.md §7.6).
var errNotEarly = errors.New("relay: EXTEND outside RELAY_EARLY")

// handleMessage acts on a relay message addressed to this relay.
func (e *engine) handleMessage(circ *relayCircuit, m onion.RelayMessage, tag [onion.TagLen]byte, early bool) error {
	if e.draining.Load() {
		// A draining relay carries what it has, nothing new (drain.go):
		// the client builds or opens it elsewhere at once.
		switch m.Cmd {
		case onion.RelayExtend:
			e.destroy(circ, hop{}, onion.DestroyHibernating)
			return nil
		case onion.RelayBegin, onion.RelayBeginDir, onion.RelayBeginStore:
			e.endStream(circ, m.StreamID, onion.EndHibernating)
			return nil
		}
	}
	if e.refuseAsleep(circ, m) {
		return nil
	}
	switch m.Cmd {
	case onion.RelayExtend:
		if !early {
			return errNotEarly
		}
		ext, err := onion.ParseExtend(m.Body)
		if err != nil {
			return err
		}
		circ.mu.Lock()
		busy := circ.extending || circ.next.l != nil
		circ.extending = true
		circ.mu.Unlock()
		if busy {
			return errors.New("relay: EXTEND on a circuit that already has a next hop")
		}
		e.goTracked(func() { e.extend(circ, ext) })
	case onion.RelayBegin:
		b, err := onion.ParseBegin(m.Body)
		if err != nil {
			return err
		}
		if e.exiter == nil {
			e.endStream(circ, m.StreamID, onion.EndExitPolicy)
			return nil
		}
		e.goTracked(func() { e.begin(circ, m.StreamID, b) })
	case onion.RelayData:
		ex := circ.exitStreams()
		if ex == nil {
			return errors.New("relay: DATA on a circuit with no streams")
		}
		open, err := ex.HandleData(m.StreamID, tag, m.Body)
		circ.prev.l.FlushLater(ex)
		if err != nil {
			return err
		}
		if !open {
			e.endStream(circ, m.StreamID, onion.EndProtocol)
		}
	case onion.RelayEnd:
		end, err := onion.ParseEnd(m.Body)
		if err != nil {
			return err
		}
		if ex := circ.exitStreams(); ex != nil {
			ex.HandleEnd(m.StreamID, end.Reason)
		}
	case onion.RelaySendme:
		if ex := circ.exitStreams(); ex != nil {
			return ex.HandleSendme(m.StreamID, m.Body)
		}
	case onion.RelayFin:
		if ex := circ.exitStreams(); ex != nil {
			ex.HandleFin(m.StreamID)
		}
	case onion.RelayPing:
		if _, err := onion.ParsePing(m.Body); err != nil {
			return err
		}
		// The client is asking whether its path still works (SPEC.md
		// §7.8): the same nonce straight back.
		e.stats.pings.Add(1)
		circ.sendRelay(e, onion.RelayPong, 0, m.Body)
	case onion.RelayBeginStore:
		if e.store == nil {
			e.endStream(circ, m.StreamID, onion.EndNoRoute)
			return nil
		}
		e.goTracked(func() { e.beginStore(circ, m.StreamID) })
	case onion.RelayBeginDir:
		if err := onion.ParseBeginDir(m.Body); err != nil {
			return err
		}
		e.beginDir(circ, m.StreamID)
	case onion.RelayDrop:
	default:
		return fmt.Errorf("relay: unexpected %v", m.Cmd)
	}
	return nil
}

func (circ *relayCircuit) exitStreams() *stream.Circuit {
	circ.mu.Lock()
	defer circ.mu.Unlock()
	return circ.exit
}

func (e *engine) endStream(circ *relayCircuit, sid uint16, reason onion.EndReason) {
	m := onion.End{Reason: reason}
	body, _ := m.Marshal()
	circ.sendRelay(e, onion.RelayEnd, sid, body)
}

// goTracked runs f in a goroutine the relay waits for on shutdown.
func (e *engine) goTracked(f func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
}

// extend opens the next hop of a circuit: a link to the named relay, a
// CREATE on it, and EXTENDED back once its CREATED arrives.
func (e *engine) extend(circ *relayCircuit, ext onion.Extend) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(e.ctx, extendTimeout)
	defer cancel()
	fail := func(why string, err error) {
		e.log.Debug("extend failed", "why", why, "err", err)
		e.destroy(circ, hop{}, onion.DestroyConnectFailed)
	}
	if ext.NodeID == e.r.ID() {
		fail("to itself", nil)
		return
	}
	if e.r.refuseExtend != nil && e.r.refuseExtend(ext.NodeID) {
		fail("refused by the test hook refuseExtend", nil)
		return
	}
	if prev, ok := circ.prev.l.Peer(); ok && prev == ext.NodeID {
		fail("back to the previous hop", nil)
		return
	}
	if !e.waitKnown(ctx, ext) {
		fail("not a relay in this relay's view", nil)
		return
	}
	l, err := e.links.get(ctx, ext.NodeID, ext.AddrPort)
	if err != nil {
		fail("link", err)
		return
	}
	id, err := l.NewCircID()
	if err != nil {
		fail("circuit id", err)
		return
	}
	next := hop{l, id}
	created := make(chan []byte, 1)
	circ.mu.Lock()
	if circ.dead {
		circ.mu.Unlock()
		l.ReleaseCircID(id)
		return
	}
	circ.pending, circ.created = next, created
	circ.mu.Unlock()
	e.circs.add(next, circ)
	cell, err := onion.NewCreateCell(id, ext.Handshake)
	if err == nil {
		err = e.send(l, cell)
	}
	if err != nil {
		fail("create", err)
		return
	}
	var reply []byte
	select {
	case reply = <-created:
	case <-ctx.Done():
		fail("no CREATED", ctx.Err())
		return
	}
	circ.mu.Lock()
	circ.next, circ.extending = next, false
	circ.mu.Unlock()
	e.stats.extends.Add(1)
	e.stats.extendSeconds.Observe(time.Since(start).Seconds())
	m := onion.Extended{Handshake: reply}
	body, err := m.Marshal()
	if err == nil {
		_, err = circ.sendRelay(e, onion.RelayExtended, 0, body)
	}
	if err != nil {
		fail("extended", err)
	}
}

// knownWait bounds how long an EXTEND waits for gossip to bring the next
// relay's descriptor: a relay that has just joined is known to the seeds
// (and so to clients) a moment before every relay has fetched it.
const knownWait = 3 * time.Second

// waitKnown reports whether ext names a relay this relay knows at that
// address, waiting up to knownWait for gossip to catch up.
func (e *engine) waitKnown(ctx context.Context, ext onion.Extend) bool {
	deadline := time.Now().Add(knownWait)
	for {
		if e.r.knownAt(ext.NodeID, ext.AddrPort) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// handleCreated passes a CREATED to the extend waiting for it.
func (e *engine) handleCreated(l *link.Link, c *onion.Cell) {
	defer link.Release(c)
	circ := e.circs.get(hop{l, c.CircID})
	if circ == nil {
		return
	}
	reply, err := c.CreatedHandshake()
	circ.mu.Lock()
	ch, want := circ.created, circ.pending
	circ.created = nil
	circ.mu.Unlock()
	if err != nil || ch == nil || want != (hop{l, c.CircID}) {
		e.destroy(circ, hop{l, c.CircID}, onion.DestroyProtocol)
		return
	}
	ch <- reply
}

// openStream registers a stream at this end of the circuit and answers
// CONNECTED with addr (invalid: none).
func (e *engine) openStream(circ *relayCircuit, sid uint16, addr netip.Addr) (*stream.Stream, bool) {
	circ.mu.Lock()
	if circ.dead {
		circ.mu.Unlock()
		return nil, false
	}
	if circ.exit == nil {
		circ.exit = stream.NewCircuit(exitSender{e, circ})
	}
	ex := circ.exit
	circ.mu.Unlock()
	s, err := ex.Open(sid)
	if err != nil {
		e.endStream(circ, sid, onion.EndProtocol)
		return nil, false
	}
	m := onion.Connected{Addr: addr}
	body, _ := m.Marshal()
	if _, err := circ.sendRelay(e, onion.RelayConnected, sid, body); err != nil {
		return nil, false
	}
	return s, true
}

// beginStore serves a storage stream: requests framed as shard/store
// specifies, answered in order from this relay's store, under a per-stream
// rate limit.
func (e *engine) beginStore(circ *relayCircuit, sid uint16) {
	s, ok := e.openStream(circ, sid, netip.Addr{})
	if !ok {
		return
	}
	e.stats.streamOpened(streamStorage)
	lim, _ := store.NewLimiter(store.DefaultLimiterConfig())
	err := store.Serve(e.ctx, s, e.store, lim)
	reason := onion.EndDone
	if err != nil {
		reason = onion.EndProtocol
	}
	s.CloseWith(reason)
}

// begin opens an exit stream: connect under the exit policy, answer
// CONNECTED or END, then copy bytes both ways until either side ends.
func (e *engine) begin(circ *relayCircuit, sid uint16, b onion.Begin) {
	conn, addr, reason := e.exiter.connect(e.ctx, b)
	if reason != 0 {
		e.stats.refused.Add(1)
		e.endStream(circ, sid, reason)
		return
	}
	e.stats.begins.Add(1)
	defer conn.Close()
	s, ok := e.openStream(circ, sid, addr)
	if !ok {
		return
	}
	e.stats.streamOpened(streamExit)
	// Both ways until both end, a half-close passed on each way, and the
	// stream and conn released once either side is gone and the other
	// has had its linger: a client that leaves a keep-alive server's
	// connection open must not hold this exit's socket for ever.
	splice.Run(conn, s, splice.Options{Linger: splice.DefaultLinger})
}
