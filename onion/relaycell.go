package onion

import (
	"encoding/binary"
	"strconv"
)

// RelayCmd is the command of a relay cell (SPEC.md §3). Append-only: never renumber or
// reuse a value. Parsers accept unknown nonzero commands (a newer peer may
// send them); the handler decides what to do with them.
type RelayCmd uint8

const (
	relayReserved  RelayCmd = 0 // invalid on the wire
	RelayBegin     RelayCmd = 1 // open a stream at the exit (Begin)
	RelayData      RelayCmd = 2 // stream bytes; counts against the windows
	RelayEnd       RelayCmd = 3 // close a stream (End)
	RelayConnected RelayCmd = 4 // the exit connected a stream (Connected)
	RelaySendme    RelayCmd = 5 // flow-control credit (Sendme)
	RelayExtend    RelayCmd = 6 // extend the circuit by one hop (Extend)
	RelayExtended  RelayCmd = 7 // the extension succeeded (Extended)
	RelayDrop      RelayCmd = 8 // long-range padding, ignored by the receiver
	// RelayBeginStore opens a stream to the last hop's shard store
	// (SPEC.md §7.7); storage requests then travel as stream bytes.
	RelayBeginStore RelayCmd = 9
	// RelayFin says the sender will send no more DATA on the stream
	// (TCP's FIN, SPEC.md §10); the other direction stays open.
	RelayFin RelayCmd = 10
	// RelayPing asks the last hop to answer with RelayPong (Ping), so a
	// client can tell a silent path from a quiet one (SPEC.md §7.8).
	RelayPing RelayCmd = 11
	RelayPong RelayCmd = 12
	// RelayBeginDir opens a stream to the last hop's directory cache
	// (SPEC.md §7.9, Tor's BEGIN_DIR); HTTP/1.1 requests for the seeds'
	// signed consensus documents then travel as stream bytes.
	RelayBeginDir RelayCmd = 13
	numRelayCmds  RelayCmd = 14
)

var relayCmdNames = [numRelayCmds]string{"RESERVED", "BEGIN", "DATA", "END", "CONNECTED", "SENDME", "EXTEND", "EXTENDED", "DROP", "BEGIN_STORE", "FIN", "PING", "PONG", "BEGIN_DIR"}

func (c RelayCmd) String() string {
	if c < numRelayCmds {
		return relayCmdNames[c]
	}
	return "RelayCmd(" + strconv.Itoa(int(c)) + ")"
}

// RelayFlagMore says another fragment of the same message follows
// (SPEC.md §8, fragment.go). Every other flag bit is reserved and must be zero.
const RelayFlagMore uint8 = 1 << 0

const relayFlagsKnown = RelayFlagMore

// RelayCell is the relay body of one relay cell: what remains of the
// plaintext once the layer crypto has been removed. SPEC.md §6:
//
//	Cmd (1) | Flags (1) | StreamID (2) | Length (2) | Data (Length) | zeros
//
// for exactly RelayBodyLen bytes, with Length ≤ MaxRelayData. StreamID 0
// addresses the circuit itself (EXTEND, EXTENDED, circuit SENDME, DROP).
type RelayCell struct {
	Cmd      RelayCmd
	Flags    uint8
	StreamID uint16
	Data     []byte
}

// More reports whether another fragment of the same message follows.
func (c *RelayCell) More() bool { return c.Flags&RelayFlagMore != 0 }

func (c *RelayCell) check(op string) error {
	if c.Cmd == relayReserved {
		return malformedf("onion: %s relay cell: command 0 is reserved", op)
	}
	if c.Flags&^relayFlagsKnown != 0 {
		return malformedf("onion: %s relay cell: reserved flag bits %#x set", op, c.Flags&^relayFlagsKnown)
	}
	if len(c.Data) > MaxRelayData {
		return malformedf("onion: %s relay cell: data length %d exceeds %d", op, len(c.Data), MaxRelayData)
	}
	return nil
}

// MarshalRelayBody writes c into dst, which must be exactly RelayBodyLen
// bytes, zeroing the padding. It does not allocate. c.Data may already sit
// at dst[RelayHeaderLen:] (a sender may build data in place).
func MarshalRelayBody(dst []byte, c *RelayCell) error {
	if len(dst) != RelayBodyLen {
		return malformedf("onion: marshal relay cell: buffer is %d bytes, want %d", len(dst), RelayBodyLen)
	}
	if err := c.check("marshal"); err != nil {
		return err
	}
	n := copy(dst[RelayHeaderLen:], c.Data)
	clear(dst[RelayHeaderLen+n:])
	dst[0] = byte(c.Cmd)
	dst[1] = c.Flags
	binary.BigEndian.PutUint16(dst[2:4], c.StreamID)
	binary.BigEndian.PutUint16(dst[4:6], uint16(n))
	return nil
}

// ParseRelayBody parses exactly RelayBodyLen bytes into c. c.Data aliases b:
// copy it before b is reused. It does not allocate.
func ParseRelayBody(b []byte, c *RelayCell) error {
	if len(b) != RelayBodyLen {
		return malformedf("onion: parse relay cell: %d bytes, want %d", len(b), RelayBodyLen)
	}
	n := int(binary.BigEndian.Uint16(b[4:6]))
	if n > MaxRelayData {
		return malformedf("onion: parse relay cell: data length %d exceeds %d", n, MaxRelayData)
	}
	*c = RelayCell{
		Cmd:      RelayCmd(b[0]),
		Flags:    b[1],
		StreamID: binary.BigEndian.Uint16(b[2:4]),
		Data:     b[RelayHeaderLen : RelayHeaderLen+n : RelayHeaderLen+n],
	}
	if err := c.check("parse"); err != nil {
		return err
	}
	if !isZeroPad(b[RelayHeaderLen+n:]) {
		return malformedf("onion: parse %v relay cell: nonzero padding after %d data bytes", c.Cmd, n)
	}
	return nil
}
