package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"veil/directory"
	"veil/directory/linkauth"
	"veil/onion"
	"veil/onion/keys"
	"veil/relay/link"
	"veil/relay/stream"
)

// FuzzBackwardCells plays the three relays of a circuit against the
// client's handling of the cells they send back (Circuit.handleBackward).
// The input is a sequence of cells, each sealed correctly by the relays
// from its origin hop (see decodeBackward); the relays may send anything a
// relay can, in any order. Every DATA byte a hop sends is that hop's
// marker, so a byte from the guard or middle on a stream shows.
//
// Properties, after each cell:
//   - no panic;
//   - every byte a stream delivers came from the exit (issue 13 item 1: a
//     guard's DATA fragment completed by the exit's DATA was delivered as the
//     exit's), and no more than the exit sent on it;
//   - a cell for a stream from the guard or middle, a fragment as much as a
//     whole message, destroys the circuit at once, and so do a whole message
//     from them other than DROP or PONG, a fragment that breaks its hop's
//     reassembly, a malformed relay cell, a RELAY_EARLY cell (relays send
//     RELAY towards the client) and a cell no hop sealed;
//   - only a whole CONNECTED or END from the exit answers a BEGIN;
//   - a one-cell DATA from the exit on an open stream of a live circuit is
//     delivered whole (so the properties above are not met by dropping
//     everything).
//
// Whole messages are judged by one reassembler per hop (onion/SPEC.md §8).
func FuzzBackwardCells(f *testing.F) {
	endDone, _ := (&onion.End{Reason: onion.EndDone}).Marshal()
	connected, _ := (&onion.Connected{}).Marshal()
	ping, _ := (&onion.Ping{Nonce: 7}).Marshal()
	var sendmeTag [onion.TagLen]byte
	sendme, _ := (&onion.Sendme{Tag: sendmeTag}).Marshal()
	extended, _ := (&onion.Extended{Handshake: make([]byte, onion.HandshakeLen)}).Marshal()
	more := onion.RelayFlagMore
	cell := func(hop int, cmd onion.RelayCmd, flags uint8, sid uint16, data []byte) backwardCell {
		return backwardCell{hop: hop, rc: onion.RelayCell{Cmd: cmd, Flags: flags, StreamID: sid, Data: data}}
	}
	dataCell := func(hop int, flags uint8, sid uint16, n int) backwardCell {
		return cell(hop, onion.RelayData, flags, sid, make([]byte, n))
	}
	for _, seed := range [][]backwardCell{
		{ // an honest exit: BEGIN answered, data on two streams, FIN, END
			cell(exitHop, onion.RelayConnected, 0, 3, connected),
			dataCell(exitHop, 0, 1, 100),
			dataCell(exitHop, 0, 2, onion.MaxRelayData),
			dataCell(exitHop, 0, 3, 1),
			cell(exitHop, onion.RelayFin, 0, 1, nil),
			cell(exitHop, onion.RelayEnd, 0, 2, endDone),
		},
		{ // a DATA message of two cells from the exit (issue 13 item 5)
			dataCell(exitHop, more, 1, onion.MaxRelayData),
			dataCell(exitHop, 0, 1, 10),
		},
		{ // what any hop may send: DROP, PONG; EXTENDED from the exit
			cell(0, onion.RelayDrop, 0, 0, nil),
			cell(1, onion.RelayPong, 0, 0, ping),
			cell(exitHop, onion.RelayExtended, 0, 0, extended),
			cell(exitHop, onion.RelaySendme, 0, 0, sendme),
		},
		{ // issue 13 item 1: the guard begins a DATA message, the exit ends it
			dataCell(0, more, 1, 10),
			dataCell(exitHop, 0, 1, 5),
		},
		{ // the same from the middle
			dataCell(1, more, 2, 10),
			dataCell(exitHop, 0, 2, 5),
		},
		{{hop: exitHop, early: true, rc: onion.RelayCell{Cmd: onion.RelayDrop}}}, // RELAY_EARLY towards the client: destroyed
		{dataCell(0, 0, 1, 5)},                           // the guard's DATA: destroyed
		{cell(1, onion.RelayEnd, 0, 2, endDone)},         // the middle's END: destroyed
		{cell(0, onion.RelayConnected, 0, 3, connected)}, // the guard answers a BEGIN: destroyed
		{cell(1, onion.RelayFin, 0, 1, nil)},             // the middle's FIN: destroyed
		{cell(0, onion.RelaySendme, 0, 1, sendme)},       // the guard's stream SENDME: destroyed
		{cell(exitHop, onion.RelayData, 0x80, 1, nil)},   // a reserved flag: destroyed
		{cell(exitHop, 0, 0, 1, nil)},                    // command 0: destroyed
		{{hop: garbageHop, rc: onion.RelayCell{Data: []byte("not sealed by any hop")}}},
	} {
		f.Add(encodeBackward(seed))
	}
	f.Add([]byte{})

	h := newBackwardHarness(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		h.run(t, decodeBackward(in))
	})
}

const (
	backwardHops = 3
	exitHop      = backwardHops - 1
	// garbageHop marks a cell that no hop sealed: its payload is raw input.
	garbageHop = 3
	// openStreams are the stream IDs 1..openStreams the client has open;
	// the last of them still waits for CONNECTED.
	openStreams = 3
)

// hopMarker is every DATA byte each hop sends.
var hopMarker = [backwardHops]byte{'g', 'm', 'x'}

var hopName = [...]string{"guard", "middle", "exit", "no hop"}

// backwardCell is one cell a relay sends towards the client: a relay cell
// sealed at hop (and wrapped by every hop before it), or raw as the
// payload when hop is garbageHop.
type backwardCell struct {
	hop   int
	early bool // sent as RELAY_EARLY
	rc    onion.RelayCell
}

// The input is a sequence of cells, each a 6-byte header then data:
//
//	kind (bits 0-1 the origin hop, 3 for garbage; bit 2 RELAY_EARLY) |
//	cmd (mod 16) | flags (MORE and bit 7, a reserved one) |
//	stream ID (mod openStreams+1) | length (2, mod MaxRelayData+1) |
//	data: length bytes of input, except for DATA, whose bytes are the hop's
//	marker and take no input
//
// A garbage cell's payload is its data, zero-padded.
const backwardHeaderLen = 6

func decodeBackward(b []byte) []backwardCell {
	var cells []backwardCell
	for len(b) >= backwardHeaderLen {
		c := backwardCell{hop: int(b[0] & 3), early: b[0]&4 != 0}
		c.rc.Cmd = onion.RelayCmd(b[1] % 16)
		c.rc.Flags = b[2] & (onion.RelayFlagMore | 0x80)
		c.rc.StreamID = uint16(b[3]) % (openStreams + 1)
		n := int(binary.BigEndian.Uint16(b[4:6])) % (onion.MaxRelayData + 1)
		b = b[backwardHeaderLen:]
		if c.hop != garbageHop && c.rc.Cmd == onion.RelayData {
			c.rc.Data = bytes.Repeat([]byte{hopMarker[c.hop]}, n)
		} else {
			n = min(n, len(b))
			c.rc.Data, b = b[:n:n], b[n:]
		}
		cells = append(cells, c)
	}
	return cells
}

// encodeBackward is decodeBackward's inverse, for seeds.
func encodeBackward(cells []backwardCell) []byte {
	var b []byte
	for _, c := range cells {
		kind := byte(c.hop)
		if c.early {
			kind |= 4
		}
		b = append(b, kind, byte(c.rc.Cmd), c.rc.Flags, byte(c.rc.StreamID))
		b = binary.BigEndian.AppendUint16(b, uint16(len(c.rc.Data)))
		if c.hop == garbageHop || c.rc.Cmd != onion.RelayData {
			b = append(b, c.rc.Data...)
		}
	}
	return b
}

// backwardHarness holds what every run shares: a link to a guard that
// swallows whatever the client sends, and the hops' keys.
type backwardHarness struct {
	l      *link.Link
	keys   [backwardHops]onion.HopKeys
	nextID uint32
}

// sinkHandler releases every cell and ignores the link's end.
type sinkHandler struct{}

func (sinkHandler) HandleCell(_ *link.Link, c *onion.Cell) { link.Release(c) }
func (sinkHandler) LinkClosed(*link.Link, error)           {}

// newBackwardHarness links the client to a guard over loopback TLS. The
// connections are not wrapped (link.WrapConn), so FlushLater flushes at
// once and handleBackward may run on the test's goroutine instead of the
// link's reader.
func newBackwardHarness(t testing.TB) *backwardHarness {
	h := &backwardHarness{}
	for i := range h.keys {
		k := &h.keys[i]
		kdf := func(label string) [32]byte { return sha256.Sum256(fmt.Appendf(nil, "fuzz hop %d %s", i, label)) }
		k.Forward, k.Backward = kdf("forward"), kdf("backward")
		fr, br := kdf("forward recognized"), kdf("backward recognized")
		copy(k.ForwardRecognized[:], fr[:])
		copy(k.BackwardRecognized[:], br[:])
	}

	guard, err := keys.GenerateIdentity(rand.NewChaCha8([32]byte{'g'}))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := linkauth.ServerConfig(guard, linkauth.AnonymousClients)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type result struct {
		l   *link.Link
		err error
	}
	served := make(chan result, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			served <- result{err: err}
			return
		}
		conn := tls.Server(raw, cfg)
		if err := conn.HandshakeContext(ctx); err != nil {
			raw.Close()
			served <- result{err: err}
			return
		}
		l, err := link.Establish(ctx, conn, link.Options{Handler: sinkHandler{}})
		served <- result{l, err}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := linkauth.Client(ctx, raw, guard.ID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h.l, err = link.Establish(ctx, conn, link.Options{Handler: sinkHandler{}, Initiator: true})
	if err != nil {
		t.Fatal(err)
	}
	s := <-served
	if s.err != nil {
		t.Fatal(s.err)
	}
	t.Cleanup(func() {
		h.l.Close()
		s.l.Close()
		h.l.Wait()
		s.l.Wait()
	})
	return h
}

// circuit returns a fresh built circuit through the harness's link, as
// Client.Build leaves it (keep the two in step), and the layers of its
// relays.
func (h *backwardHarness) circuit(t *testing.T) (*Circuit, [backwardHops]*onion.RelayLayer) {
	h.nextID++
	c := &Circuit{l: h.l, id: h.nextID, hops: make([]directory.Entry, backwardHops),
		opening: map[uint16]chan beginResult{}, closedCh: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.streams = stream.NewCircuit(exitSender{c})
	var layers [backwardHops]*onion.RelayLayer
	for i := range h.keys {
		if err := c.crypto.AddHop(&h.keys[i]); err != nil {
			t.Fatal(err)
		}
		l, err := onion.NewRelayLayer(&h.keys[i])
		if err != nil {
			t.Fatal(err)
		}
		layers[i] = l
	}
	c.built = time.Now()
	return c, layers
}

// seal makes the cell the guard puts on the link for bc.
func (h *backwardHarness) seal(t *testing.T, c *Circuit, layers [backwardHops]*onion.RelayLayer, bc backwardCell) *onion.Cell {
	cell := link.NewCell()
	cell.CircID, cell.Cmd = c.id, onion.CellRelay
	if bc.early {
		cell.Cmd = onion.CellRelayEarly
	}
	p := cell.Payload[:]
	clear(p)
	if bc.hop == garbageHop {
		copy(p, bc.rc.Data)
		return cell
	}
	body := onion.RelayBody(p)
	body[0], body[1] = byte(bc.rc.Cmd), bc.rc.Flags
	binary.BigEndian.PutUint16(body[2:4], bc.rc.StreamID)
	binary.BigEndian.PutUint16(body[4:6], uint16(len(bc.rc.Data)))
	copy(body[onion.RelayHeaderLen:], bc.rc.Data)
	if _, err := layers[bc.hop].EncryptBackwardOrigin(cell.Cmd, p); err != nil {
		t.Fatal(err)
	}
	for j := bc.hop - 1; j >= 0; j-- {
		if err := layers[j].EncryptBackward(cell.Cmd, p); err != nil {
			t.Fatal(err)
		}
	}
	return cell
}

// run feeds cells to a fresh circuit until it is destroyed, checking the
// properties of FuzzBackwardCells after each.
func (h *backwardHarness) run(t *testing.T, cells []backwardCell) {
	c, layers := h.circuit(t)
	defer c.Close()
	var streams [openStreams + 1]*stream.Stream
	for sid := 1; sid <= openStreams; sid++ {
		s, err := c.streams.Open(uint16(sid))
		if err != nil {
			t.Fatal(err)
		}
		streams[sid] = s
	}
	begin := make(chan beginResult, 1) // the last stream waits for CONNECTED
	c.opening[openStreams] = begin
	answered := false
	c.reply = make(chan []byte, 1) // an EXTEND is out

	var hops [backwardHops]onion.Reassembler // what each hop sent, apart
	var exitSent [openStreams + 1]int        // DATA bytes the exit sent per stream
	buf := make([]byte, onion.MaxRelayMessageLen)
	for i, bc := range cells {
		if c.Err() != nil {
			return // Client.HandleCell drops the cells of a destroyed circuit
		}
		what := fmt.Sprintf("cell %d (%v from the %s, stream %d, flags %#x, %d bytes)",
			i, bc.rc.Cmd, hopName[bc.hop], bc.rc.StreamID, bc.rc.Flags, len(bc.rc.Data))
		if bc.hop == garbageHop {
			what = fmt.Sprintf("cell %d (%d bytes sealed by no hop)", i, len(bc.rc.Data))
		}

		// What the cell must do, judged by one reassembler per hop.
		var mustDestroy string
		var msg onion.RelayMessage
		var complete bool
		switch {
		case bc.hop == garbageHop:
			mustDestroy = "a cell no hop sealed"
		case bc.early:
			mustDestroy = "a RELAY_EARLY cell towards the client (onion/SPEC.md §7.6)"
		default:
			rc := bc.rc
			var err error
			msg, complete, err = hops[bc.hop].Add(&rc)
			switch {
			case err != nil:
				mustDestroy = err.Error()
			case bc.hop != exitHop && bc.rc.StreamID != 0:
				mustDestroy = fmt.Sprintf("a cell for stream %d from the %s, fragment or whole: only the exit speaks for a stream (issue 13 item 1)",
					bc.rc.StreamID, hopName[bc.hop])
			case complete && bc.hop != exitHop && msg.Cmd != onion.RelayDrop && msg.Cmd != onion.RelayPong:
				mustDestroy = fmt.Sprintf("a whole %v on stream %d from the %s: only the exit speaks for a stream (issue 13 item 1)",
					msg.Cmd, msg.StreamID, hopName[bc.hop])
			}
		}
		var ended bool
		if sid := bc.rc.StreamID; sid != 0 {
			_, ended = streams[sid].EndReason()
		}
		exitData := bc.hop == exitHop && complete && msg.Cmd == onion.RelayData
		if exitData {
			exitSent[msg.StreamID] += len(msg.Body)
		}

		c.handleBackward(h.seal(t, c, layers, bc))
		alive := c.Err() == nil

		if mustDestroy != "" && alive {
			t.Fatalf("%s: the circuit is still up after %s", what, mustDestroy)
		}
		if sid := bc.rc.StreamID; sid != 0 {
			got := drain(t, c, streams[sid], buf)
			if bad := len(got) - bytes.Count(got, []byte{hopMarker[exitHop]}); bad > 0 {
				t.Fatalf("%s: stream %d delivered %d bytes, %d of them not from the exit (%d from the guard, %d from the middle): a relay injected stream data (issue 13 item 1)",
					what, sid, len(got), bad, bytes.Count(got, []byte{hopMarker[0]}), bytes.Count(got, []byte{hopMarker[1]}))
			}
			exitSent[sid] -= len(got)
			if exitSent[sid] < 0 {
				t.Fatalf("%s: stream %d delivered %d bytes more than the exit sent on it", what, sid, -exitSent[sid])
			}
			if exitData && alive && !ended && len(msg.Body) <= onion.MaxRelayData && len(got) != len(msg.Body) {
				t.Fatalf("%s: stream %d delivered %d bytes of the exit's %d", what, sid, len(got), len(msg.Body))
			}
		}
		if len(begin) > 0 && !answered {
			answered = true
			r := <-begin
			destroyed := !alive && !r.connected && r.reason == onion.EndDestroy
			if !destroyed && (bc.hop != exitHop || !complete || msg.StreamID != openStreams ||
				(msg.Cmd != onion.RelayConnected && msg.Cmd != onion.RelayEnd)) {
				t.Fatalf("%s: answered the BEGIN on stream %d (connected %v, reason %v)", what, openStreams, r.connected, r.reason)
			}
		}
	}
}

// drain reads what stream s delivered. While the circuit is up only s can
// hold data (every cell is drained after it), so Queued says whether a
// Read would wait; a Read that waits all the same means data went to
// another stream than the cell's.
func drain(t *testing.T, c *Circuit, s *stream.Stream, buf []byte) []byte {
	var got []byte
	for {
		if c.Err() == nil {
			if q, _ := c.streams.Queued(); q == 0 {
				return got
			}
		}
		read := make(chan int, 1)
		go func() {
			n, _ := s.Read(buf)
			read <- n
		}()
		var n int
		select {
		case n = <-read:
		case <-time.After(10 * time.Second):
			t.Fatalf("stream %d: data queued on the circuit, none on the stream the cell named", s.ID())
		}
		if n == 0 {
			return got
		}
		got = append(got, buf[:n]...)
	}
}
