package onion

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors that callers branch on. Every error from the parsers in
// this package wraps ErrMalformed; every error from the Reassembler and the
// flow-control windows wraps ErrProtocol. Both mean the peer is broken or
// hostile: destroy the circuit (DestroyProtocol) and drop what it sent.
var (
	// ErrMalformed means bytes do not follow the layout SPEC.md gives.
	ErrMalformed = errors.New("onion: malformed message")
	// ErrProtocol means well-formed messages arrived in an order or amount
	// the protocol forbids (interleaved fragments, window overrun, a SENDME
	// that proves nothing).
	ErrProtocol = errors.New("onion: protocol violation")
)

// kindError carries a specific message and wraps one of the sentinels.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func malformedf(format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: ErrMalformed}
}

func violationf(format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: ErrProtocol}
}

// zeroPad is read-only; bytes.Equal against it checks padding at memequal
// speed, which matters for the relay body of every cell.
var zeroPad [CellPayloadLen]byte

func isZeroPad(b []byte) bool {
	for len(b) > len(zeroPad) {
		if !bytes.Equal(b[:len(zeroPad)], zeroPad[:]) {
			return false
		}
		b = b[len(zeroPad):]
	}
	return bytes.Equal(b, zeroPad[:len(b)])
}

// CellCmd is the command byte of a link cell (SPEC.md §2.2). Append-only: never renumber
// or reuse a value.
type CellCmd uint8

const (
	CellPadding  CellCmd = 0 // padding; any circuit ID (0 on an idle link), payload all zeros
	CellVersions CellCmd = 1 // version negotiation; circuit ID 0
	CellCreate   CellCmd = 2 // handshake request for the first hop
	CellCreated  CellCmd = 3 // handshake reply
	CellRelay    CellCmd = 4 // layered relay cell (payload opaque here)
	CellDestroy  CellCmd = 5 // tear down a circuit
	// CellRelayEarly is a RELAY cell that may carry EXTEND. Each relay lets
	// at most MaxHops-1 of them through per circuit (enforced by the relay).
	CellRelayEarly CellCmd = 6
	numCellCmds    CellCmd = 7
)

var cellCmdNames = [numCellCmds]string{"PADDING", "VERSIONS", "CREATE", "CREATED", "RELAY", "DESTROY", "RELAY_EARLY"}

func (c CellCmd) String() string {
	if c < numCellCmds {
		return cellCmdNames[c]
	}
	return "CellCmd(" + strconv.Itoa(int(c)) + ")"
}

// DestroyReason is carried by a DESTROY cell (SPEC.md §2.4). Append-only. Parsers accept
// values they do not know (a newer peer may send them): the circuit is torn
// down whatever the reason.
type DestroyReason uint8

const (
	DestroyNone          DestroyReason = 0
	DestroyProtocol      DestroyReason = 1
	DestroyInternal      DestroyReason = 2
	DestroyRequested     DestroyReason = 3
	DestroyHibernating   DestroyReason = 4
	DestroyResourceLimit DestroyReason = 5
	DestroyConnectFailed DestroyReason = 6
	DestroyIdentity      DestroyReason = 7  // relay identity mismatch
	DestroyFinished      DestroyReason = 8  // circuit closed normally
	DestroyTimeout       DestroyReason = 9  // circuit build or idle timeout
	DestroyDestroyed     DestroyReason = 10 // the circuit was destroyed elsewhere
	DestroyNoSuchService DestroyReason = 11
	DestroyTampered      DestroyReason = 12 // a cell failed authentication (G3)
	numDestroyReasons                  = 13
)

var destroyNames = [numDestroyReasons]string{"NONE", "PROTOCOL", "INTERNAL", "REQUESTED", "HIBERNATING",
	"RESOURCELIMIT", "CONNECTFAILED", "IDENTITY", "FINISHED", "TIMEOUT", "DESTROYED", "NOSUCHSERVICE", "TAMPERED"}

func (r DestroyReason) String() string {
	if r < numDestroyReasons {
		return destroyNames[r]
	}
	return "DestroyReason(" + strconv.Itoa(int(r)) + ")"
}

// MaxVersions bounds a VERSIONS cell (SPEC.md §2.3): a node speaks few protocol versions,
// and a one-byte count with a small cap keeps the parse trivially bounded.
const MaxVersions = 16

// Cell is one fixed-size link cell (G5). Payload is an array so that cells
// can be reused and never allocate. SPEC.md §2:
//
//	CircID (4) | Cmd (1) | Payload (CellPayloadLen)
//
// Payloads by command, each zero-padded to CellPayloadLen:
//
//	PADDING:  zeros
//	VERSIONS: count (1, 1..MaxVersions) | version (2) × count | zeros
//	CREATE:   handshake request (HandshakeLen) | zeros
//	CREATED:  handshake reply (HandshakeLen) | zeros
//	DESTROY:  reason (1) | zeros
//	RELAY, RELAY_EARLY: layered ciphertext, opaque here
//
// CircID 0 is the link itself: VERSIONS must use it, PADDING may use any
// circuit ID, and every other command must not use 0.
type Cell struct {
	CircID  uint32
	Cmd     CellCmd
	Payload [CellPayloadLen]byte
}

// MarshalTo writes the cell into dst, which must be exactly CellSize bytes.
// It checks the header only; build payloads with the New…Cell functions.
func (c *Cell) MarshalTo(dst []byte) error {
	if len(dst) != CellSize {
		return malformedf("onion: marshal cell: buffer is %d bytes, want %d", len(dst), CellSize)
	}
	if err := c.checkHeader("marshal"); err != nil {
		return err
	}
	binary.BigEndian.PutUint32(dst[0:CircIDLen], c.CircID)
	dst[CircIDLen] = byte(c.Cmd)
	copy(dst[CellHeaderLen:], c.Payload[:])
	return nil
}

// ParseCell parses exactly CellSize bytes into c. It checks the header and,
// for every command whose payload this package defines (all but RELAY and
// RELAY_EARLY), the payload too, so a bad control cell is refused at the
// link. On error c is left in an unspecified state.
func ParseCell(b []byte, c *Cell) error {
	if len(b) != CellSize {
		return malformedf("onion: parse cell: %d bytes, want %d", len(b), CellSize)
	}
	c.CircID = binary.BigEndian.Uint32(b[0:CircIDLen])
	c.Cmd = CellCmd(b[CircIDLen])
	copy(c.Payload[:], b[CellHeaderLen:])
	if err := c.checkHeader("parse"); err != nil {
		return err
	}
	return c.checkPayload()
}

// ParseCellHeader is ParseCell for a reader that has read the payload
// straight into c.Payload: it parses the CellHeaderLen bytes of hdr into c
// and checks header and payload as ParseCell does. A link reads the 4 KiB
// payload of every cell this way, one copy fewer than through a buffer.
func ParseCellHeader(hdr []byte, c *Cell) error {
	if len(hdr) != CellHeaderLen {
		return malformedf("onion: parse cell: header of %d bytes, want %d", len(hdr), CellHeaderLen)
	}
	c.CircID = binary.BigEndian.Uint32(hdr[0:CircIDLen])
	c.Cmd = CellCmd(hdr[CircIDLen])
	if err := c.checkHeader("parse"); err != nil {
		return err
	}
	return c.checkPayload()
}

func (c *Cell) checkHeader(op string) error {
	if c.Cmd >= numCellCmds {
		return malformedf("onion: %s cell: unknown command %d", op, uint8(c.Cmd))
	}
	switch {
	case c.Cmd == CellPadding:
	case c.Cmd == CellVersions && c.CircID != 0:
		return malformedf("onion: %s %v cell: circuit ID %d, want 0", op, c.Cmd, c.CircID)
	case c.Cmd != CellVersions && c.CircID == 0:
		return malformedf("onion: %s %v cell: circuit ID 0 is reserved for the link", op, c.Cmd)
	}
	return nil
}

func (c *Cell) checkPayload() error {
	var err error
	switch c.Cmd {
	case CellPadding:
		if !isZeroPad(c.Payload[:]) {
			err = malformedf("onion: parse PADDING cell: nonzero payload")
		}
	case CellVersions:
		_, err = c.Versions()
	case CellCreate, CellCreated:
		_, err = c.handshake(c.Cmd)
	case CellDestroy:
		_, err = c.DestroyReason()
	}
	return err
}

// NewPaddingCell returns a PADDING cell for circID (0 for the link).
func NewPaddingCell(circID uint32) *Cell { return &Cell{CircID: circID, Cmd: CellPadding} }

// NewVersionsCell returns a VERSIONS cell listing vs (1..MaxVersions
// distinct nonzero versions, in the sender's order of preference).
func NewVersionsCell(vs []uint16) (*Cell, error) {
	if err := checkVersions(vs, "marshal"); err != nil {
		return nil, err
	}
	c := &Cell{Cmd: CellVersions}
	c.Payload[0] = byte(len(vs))
	for i, v := range vs {
		binary.BigEndian.PutUint16(c.Payload[1+2*i:], v)
	}
	return c, nil
}

// Versions returns the versions a VERSIONS cell lists.
func (c *Cell) Versions() ([]uint16, error) {
	if c.Cmd != CellVersions {
		return nil, malformedf("onion: parse VERSIONS: cell is %v", c.Cmd)
	}
	n := int(c.Payload[0])
	if n < 1 || n > MaxVersions {
		return nil, malformedf("onion: parse VERSIONS: count %d outside 1..%d", n, MaxVersions)
	}
	end := 1 + 2*n
	if !isZeroPad(c.Payload[end:]) {
		return nil, malformedf("onion: parse VERSIONS: nonzero padding")
	}
	vs := make([]uint16, n)
	for i := range vs {
		vs[i] = binary.BigEndian.Uint16(c.Payload[1+2*i:])
	}
	if err := checkVersions(vs, "parse"); err != nil {
		return nil, err
	}
	return vs, nil
}

func checkVersions(vs []uint16, op string) error {
	if len(vs) < 1 || len(vs) > MaxVersions {
		return malformedf("onion: %s VERSIONS: count %d outside 1..%d", op, len(vs), MaxVersions)
	}
	for i, v := range vs {
		if v == 0 {
			return malformedf("onion: %s VERSIONS: version 0 is reserved", op)
		}
		for _, w := range vs[:i] {
			if v == w {
				return malformedf("onion: %s VERSIONS: version %d listed twice", op, v)
			}
		}
	}
	return nil
}

// NewCreateCell returns a CREATE cell carrying the handshake request hs.
func NewCreateCell(circID uint32, hs []byte) (*Cell, error) {
	return newHandshakeCell(circID, CellCreate, hs)
}

// NewCreatedCell returns a CREATED cell carrying the handshake reply hs.
func NewCreatedCell(circID uint32, hs []byte) (*Cell, error) {
	return newHandshakeCell(circID, CellCreated, hs)
}

func newHandshakeCell(circID uint32, cmd CellCmd, hs []byte) (*Cell, error) {
	if len(hs) != HandshakeLen {
		return nil, malformedf("onion: marshal %v: handshake is %d bytes, want %d", cmd, len(hs), HandshakeLen)
	}
	c := &Cell{CircID: circID, Cmd: cmd}
	if err := c.checkHeader("marshal"); err != nil {
		return nil, err
	}
	copy(c.Payload[:], hs)
	return c, nil
}

// CreateHandshake returns a copy of the handshake request in a CREATE cell.
func (c *Cell) CreateHandshake() ([]byte, error) { return c.handshake(CellCreate) }

// CreatedHandshake returns a copy of the handshake reply in a CREATED cell.
func (c *Cell) CreatedHandshake() ([]byte, error) { return c.handshake(CellCreated) }

func (c *Cell) handshake(want CellCmd) ([]byte, error) {
	if c.Cmd != want {
		return nil, malformedf("onion: parse %v: cell is %v", want, c.Cmd)
	}
	if !isZeroPad(c.Payload[HandshakeLen:]) {
		return nil, malformedf("onion: parse %v: nonzero padding after handshake", want)
	}
	return bytes.Clone(c.Payload[:HandshakeLen]), nil
}

// NewDestroyCell returns a DESTROY cell for circID.
func NewDestroyCell(circID uint32, r DestroyReason) (*Cell, error) {
	c := &Cell{CircID: circID, Cmd: CellDestroy}
	if err := c.checkHeader("marshal"); err != nil {
		return nil, err
	}
	c.Payload[0] = byte(r)
	return c, nil
}

// DestroyReason returns the reason a DESTROY cell carries.
func (c *Cell) DestroyReason() (DestroyReason, error) {
	if c.Cmd != CellDestroy {
		return 0, malformedf("onion: parse DESTROY: cell is %v", c.Cmd)
	}
	if !isZeroPad(c.Payload[1:]) {
		return 0, malformedf("onion: parse DESTROY: nonzero padding")
	}
	return DestroyReason(c.Payload[0]), nil
}
