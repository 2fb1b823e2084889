package onion

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// Every fuzz target demands that whatever parses re-marshals to identical
// bytes (age FuzzMalleability): the encodings are canonical, so no two byte
// strings mean the same message. Seeds are commented valid and invalid
// frames.

func fuzzReMarshal[M any](t *testing.T, b []byte, parse func([]byte) (M, error), marshal func(*M) ([]byte, error)) {
	m, err := parse(b)
	if err != nil {
		return
	}
	out, err := marshal(&m)
	if err != nil {
		t.Fatalf("parsed %x but cannot marshal it: %v", b, err)
	}
	if !bytes.Equal(out, b) {
		t.Fatalf("re-marshal differs:\n in  %x\n out %x", b, out)
	}
}

func cellBytes(circ uint32, cmd CellCmd, payload ...byte) []byte {
	b := make([]byte, CellSize)
	binary.BigEndian.PutUint32(b, circ)
	b[CircIDLen] = byte(cmd)
	copy(b[CellHeaderLen:], payload)
	return b
}

func FuzzParseCell(f *testing.F) {
	f.Add(cellBytes(0, CellPadding))                        // valid PADDING
	f.Add(cellBytes(0, CellVersions, 2, 0, 1, 0, 2))        // valid VERSIONS 1, 2
	f.Add(cellBytes(9, CellCreate, testHandshake(1)...))    // valid CREATE
	f.Add(cellBytes(9, CellCreated, testHandshake(2)...))   // valid CREATED
	f.Add(cellBytes(9, CellDestroy, byte(DestroyTampered))) // valid DESTROY
	f.Add(cellBytes(9, CellRelay, 0xff, 0xee, 0xdd))        // valid RELAY (opaque)
	f.Add(cellBytes(9, CellRelayEarly, 1, 2, 3))            // valid RELAY_EARLY
	f.Add(cellBytes(1, CellPadding))                        // valid: PADDING on a circuit
	f.Add(cellBytes(1, CellVersions, 1, 0, 1))              // invalid: VERSIONS on a circuit
	f.Add(cellBytes(0, CellVersions, 0))                    // invalid: no versions
	f.Add(cellBytes(0, CellCreate))                         // invalid: CREATE on circuit 0
	f.Add(cellBytes(9, 7))                                  // invalid: unknown command
	f.Add(cellBytes(9, CellDestroy, 1, 1))                  // invalid: DESTROY padding
	f.Add([]byte{0, 0, 0, 0, 0})                            // invalid: short
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Cell
		err := ParseCell(b, &c)
		if len(b) == CellSize {
			// A link parses the header apart from the payload it read
			// into the cell; both ways must agree.
			var h Cell
			copy(h.Payload[:], b[CellHeaderLen:])
			herr := ParseCellHeader(b[:CellHeaderLen], &h)
			if (herr == nil) != (err == nil) || (err == nil && h != c) {
				t.Fatalf("ParseCellHeader: %v, %+v; ParseCell: %v", herr, h.Cmd, err)
			}
		}
		if err != nil {
			return
		}
		out := make([]byte, CellSize)
		if err := c.MarshalTo(out); err != nil || !bytes.Equal(out, b) {
			t.Fatalf("re-marshal differs (%v)", err)
		}
	})
}

func relayBytes(cmd RelayCmd, flags uint8, sid uint16, length uint16, data ...byte) []byte {
	b := make([]byte, RelayBodyLen)
	b[0], b[1] = byte(cmd), flags
	binary.BigEndian.PutUint16(b[2:], sid)
	binary.BigEndian.PutUint16(b[4:], length)
	copy(b[RelayHeaderLen:], data)
	return b
}

func FuzzParseRelayBody(f *testing.F) {
	f.Add(relayBytes(RelayData, 0, 1, 3, 'a', 'b', 'c'))                  // valid DATA
	f.Add(relayBytes(RelayData, RelayFlagMore, 1, 1, 'a'))                // valid fragment
	f.Add(relayBytes(RelayDrop, 0, 0, 0))                                 // valid DROP
	f.Add(relayBytes(0, 0, 1, 0))                                         // invalid: command 0
	f.Add(relayBytes(RelayData, 2, 1, 0))                                 // invalid: reserved flag
	f.Add(relayBytes(RelayData, 0, 1, MaxRelayData+1))                    // invalid: too long
	f.Add(relayBytes(RelayData, 0, 1, 1, 'a', 'b'))                       // invalid: padding
	f.Add(relayBytes(RelayData, 0, 1, 3, 'a', 'b', 'c')[:RelayBodyLen-1]) // invalid: short
	f.Fuzz(func(t *testing.T, b []byte) {
		var c RelayCell
		if ParseRelayBody(b, &c) != nil {
			return
		}
		out := make([]byte, RelayBodyLen)
		if err := MarshalRelayBody(out, &c); err != nil || !bytes.Equal(out, b) {
			t.Fatalf("re-marshal differs (%v)", err)
		}
	})
}

func FuzzParseBegin(f *testing.F) {
	f.Add([]byte{1, 192, 0, 2, 1, 1, 187, 0, 0, 0, 0})                          // valid: 192.0.2.1:443
	f.Add(append([]byte{2}, append(make([]byte, 15), 1, 0, 80, 0, 0, 0, 0)...)) // valid: [::1]:80
	f.Add([]byte{3, 3, 'a', '.', 'b', 0, 80, 0, 0, 0, 0})                       // valid: a.b:80
	f.Add([]byte{3, 7, '1', '.', '2', '.', '3', '.', '4', 0, 80, 0, 0, 0, 0})   // invalid: IP as name
	f.Add([]byte{3, 1, ' ', 0, 80, 0, 0, 0, 0})                                 // invalid: space
	f.Add([]byte{1, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0})                            // invalid: port 0
	f.Add([]byte{1, 192, 0, 2, 1, 1, 187, 0, 0, 0, 1})                          // invalid: flags
	f.Add([]byte{3, 200, 'a'})                                                  // invalid: truncated
	f.Fuzz(func(t *testing.T, b []byte) { fuzzReMarshal(t, b, ParseBegin, (*Begin).Marshal) })
}

func FuzzParseConnected(f *testing.F) {
	f.Add([]byte{0})                                                               // valid: no address
	f.Add([]byte{1, 10, 0, 0, 1})                                                  // valid: 10.0.0.1
	f.Add(append([]byte{2}, make([]byte, 16)...))                                  // valid: ::
	f.Add([]byte{0, 0})                                                            // invalid: trailing byte
	f.Add([]byte{3, 1, 2, 3, 4})                                                   // invalid: hostname type
	f.Add(append([]byte{2}, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4)) // invalid: IPv4-mapped
	f.Fuzz(func(t *testing.T, b []byte) { fuzzReMarshal(t, b, ParseConnected, (*Connected).Marshal) })
}

func FuzzParseEnd(f *testing.F) {
	f.Add([]byte{byte(EndDone)}) // valid
	f.Add([]byte{200})           // valid: unknown reason
	f.Add([]byte{0})             // invalid: reason 0
	f.Add([]byte{6, 0})          // invalid: trailing byte
	f.Fuzz(func(t *testing.T, b []byte) { fuzzReMarshal(t, b, ParseEnd, (*End).Marshal) })
}

func FuzzParseSendme(f *testing.F) {
	f.Add(append([]byte{1}, make([]byte, TagLen)...))   // valid
	f.Add(append([]byte{0}, make([]byte, TagLen)...))   // invalid: version 0
	f.Add(append([]byte{1}, make([]byte, TagLen-1)...)) // invalid: short tag
	f.Fuzz(func(t *testing.T, b []byte) { fuzzReMarshal(t, b, ParseSendme, (*Sendme).Marshal) })
}

func FuzzParsePing(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1}) // valid: nonce 1
	f.Add([]byte{1, 2, 3})                // truncated
	f.Fuzz(func(t *testing.T, b []byte) { fuzzReMarshal(t, b, ParsePing, (*Ping).Marshal) })
}

func FuzzParseExtend(f *testing.F) {
	valid := func(ap string) []byte {
		m := testExtend(ap)
		b, err := m.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(valid("192.0.2.9:9001"))                  // valid IPv4
	f.Add(valid("[2001:db8::9]:443"))               // valid IPv6
	f.Add(valid("192.0.2.9:9001")[:ExtendMsgLen-1]) // invalid: short
	bad := valid("192.0.2.9:9001")
	bad[extendAddrOff+ipv4Len] = 1
	f.Add(bad)                        // invalid: nonzero byte after the IPv4 address
	f.Add(make([]byte, ExtendMsgLen)) // invalid: address type 0
	f.Fuzz(func(t *testing.T, b []byte) { fuzzReMarshal(t, b, ParseExtend, (*Extend).Marshal) })
}

func FuzzParseExtended(f *testing.F) {
	b := make([]byte, ExtendMsgLen)
	copy(b, testHandshake(5))
	f.Add(b)                                        // valid
	f.Add(b[:HandshakeLen])                         // invalid: unpadded
	f.Add(append(b[:ExtendMsgLen:ExtendMsgLen], 0)) // invalid: long
	f.Fuzz(func(t *testing.T, b []byte) { fuzzReMarshal(t, b, ParseExtended, (*Extended).Marshal) })
}

// FuzzReassembler feeds a stream of relay cells, each encoded as
// cmd | flags | streamID low byte | length (1) | data, through a
// Reassembler. Whatever completes must fragment back (at the same cell
// size) into cells the Reassembler joins to the same message, and no
// message may exceed MaxRelayMessageLen.
func FuzzReassembler(f *testing.F) {
	f.Add([]byte{2, 0, 1, 3, 'a', 'b', 'c'})                    // one DATA cell
	f.Add([]byte{2, 1, 1, 2, 'a', 'b', 2, 0, 1, 1, 'c'})        // two fragments
	f.Add([]byte{2, 1, 1, 1, 'a', 8, 0, 0, 0, 2, 0, 1, 1, 'b'}) // invalid: DROP between fragments
	f.Add([]byte{2, 1, 1, 1, 'a', 2, 0, 2, 1, 'b'})             // invalid: interleaved stream
	f.Add([]byte{2, 1, 1, 0})                                   // invalid: empty MORE
	f.Fuzz(func(t *testing.T, in []byte) {
		var r Reassembler
		for len(in) >= 4 {
			c := RelayCell{Cmd: RelayCmd(in[0]), Flags: in[1], StreamID: uint16(in[2])}
			n := min(int(in[3]), len(in)-4)
			c.Data = in[4 : 4+n]
			in = in[4+n:]
			m, done, err := r.Add(&c)
			if err != nil {
				if r.InProgress() {
					t.Fatal("in progress after an error")
				}
				continue
			}
			if !done {
				continue
			}
			if len(m.Body) > MaxRelayMessageLen {
				t.Fatalf("message of %d bytes", len(m.Body))
			}
			cells, err := m.Fragments(max(1, min(len(m.Body), MaxRelayData)))
			if err != nil {
				t.Fatalf("completed message does not fragment: %v", err)
			}
			var r2 Reassembler
			for i := range cells {
				m2, done2, err := r2.Add(&cells[i])
				if err != nil || done2 != (i == len(cells)-1) {
					t.Fatalf("refragmented cell %d: %v", i, err)
				}
				if done2 && (m2.Cmd != m.Cmd || m2.StreamID != m.StreamID || !bytes.Equal(m2.Body, m.Body)) {
					t.Fatal("refragmented message differs")
				}
			}
		}
	})
}
