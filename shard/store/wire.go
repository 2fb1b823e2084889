package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// The storage commands' message bodies (shard/SPEC.md, "Storage
// commands"). Each travels as the body of one relay message on a circuit
// whose last hop is the storage relay; the relay maps MsgType to onion
// RelayCmd values. All integers are big-endian. Every Parse demands the
// canonical encoding and an exact length, so for valid b
// Marshal(Parse(b)) == b.
//
// Changelog: version 1 — PUT, GET, HAS, RESULT as below.

// MsgType names a storage message. Append-only: never renumber or reuse a
// value.
type MsgType uint8

const (
	msgReserved MsgType = 0 // invalid on the wire
	MsgPut      MsgType = 1 // client → relay: store a shard (Put)
	MsgGet      MsgType = 2 // client → relay: fetch a shard (Get)
	MsgHas      MsgType = 3 // client → relay: is a shard held? (Has)
	MsgResult   MsgType = 4 // relay → client: the answer to any of them (Result)
	numMsgTypes         = 5
)

var msgTypeNames = [numMsgTypes]string{"RESERVED", "PUT", "GET", "HAS", "RESULT"}

func (t MsgType) String() string {
	if t < numMsgTypes {
		return msgTypeNames[t]
	}
	return "MsgType(" + strconv.Itoa(int(t)) + ")"
}

// Status is a RESULT's outcome. Append-only: never renumber or reuse a
// value. A client treats a value it does not know as a failure.
type Status uint8

const (
	StatusOK          Status = 0 // done; a GET's RESULT carries the shard
	StatusNotFound    Status = 1 // GET, HAS: no such shard (or it expired)
	StatusQuota       Status = 2 // PUT: the relay's disk quota is full
	StatusConflict    Status = 3 // PUT: the ID holds other content
	StatusTooLarge    Status = 4 // PUT: data exceeds the relay's shard limit
	StatusCorrupt     Status = 5 // GET: the stored shard failed its check and is gone
	StatusRateLimited Status = 6 // any: the circuit exceeded its rate; retry later
	StatusBadRequest  Status = 7 // any: malformed body, or a TTL over the relay's maximum
	numStatuses              = 8
)

var statusNames = [numStatuses]string{"OK", "NOT_FOUND", "QUOTA", "CONFLICT", "TOO_LARGE", "CORRUPT", "RATE_LIMITED", "BAD_REQUEST"}

func (s Status) String() string {
	if s < numStatuses {
		return statusNames[s]
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// ErrRateLimited is what Status.Err gives for StatusRateLimited; the Store
// never returns it (the relay's Limiter decides).
var ErrRateLimited = errors.New("store: rate limited")

// ErrMalformed is wrapped by every Parse error: the peer sent bytes that
// do not follow the layout. The relay answers BAD_REQUEST.
var ErrMalformed = errors.New("store: malformed message")

func malformedf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// StatusOf maps an error from the Store or a Parse to the status a relay
// sends back. nil is StatusOK. An error it does not know (a disk failure)
// is StatusCorrupt for a GET's caller to try another shard; the relay logs
// the detail, which never goes on the wire.
func StatusOf(err error) Status {
	switch {
	case err == nil:
		return StatusOK
	case errors.Is(err, ErrNotFound):
		return StatusNotFound
	case errors.Is(err, ErrQuota):
		return StatusQuota
	case errors.Is(err, ErrConflict):
		return StatusConflict
	case errors.Is(err, ErrTooLarge):
		return StatusTooLarge
	case errors.Is(err, ErrRateLimited):
		return StatusRateLimited
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrMalformed):
		return StatusBadRequest
	default:
		return StatusCorrupt
	}
}

// Err maps a status to the sentinel a client branches on: nil for
// StatusOK, ErrMalformed wrapped for BAD_REQUEST, and an error naming the
// value for one this version does not know.
func (s Status) Err() error {
	switch s {
	case StatusOK:
		return nil
	case StatusNotFound:
		return ErrNotFound
	case StatusQuota:
		return ErrQuota
	case StatusConflict:
		return ErrConflict
	case StatusTooLarge:
		return ErrTooLarge
	case StatusCorrupt:
		return ErrCorrupt
	case StatusRateLimited:
		return ErrRateLimited
	case StatusBadRequest:
		return ErrInvalid
	}
	return fmt.Errorf("store: relay answered unknown status %d", uint8(s))
}

// Message sizes.
const (
	ttlLen     = 4
	lengthLen  = 4
	statusLen  = 1
	PutHeadLen = IDLen + ttlLen + lengthLen // 40; a PUT is this plus the data
	GetLen     = IDLen
	HasLen     = IDLen
	ResultHead = statusLen + lengthLen // 5; a RESULT is this plus the data

	// MaxPutLen and MaxResultLen bound a storage message (G9).
	MaxPutLen    = PutHeadLen + MaxShardSize
	MaxResultLen = ResultHead + MaxShardSize
)

// Put asks the relay to store Data under ID for TTL seconds:
//
//	ID (32) | TTL (4, seconds; 0 = the relay's default) | Length (4, ≤ MaxShardSize) | Data (Length)
//
// A TTL over the relay's maximum is refused (BAD_REQUEST), not clamped.
type Put struct {
	ID   [IDLen]byte
	TTL  uint32
	Data []byte
}

// Marshal encodes m.
func (m *Put) Marshal() ([]byte, error) {
	if len(m.Data) > MaxShardSize {
		return nil, malformedf("marshal PUT: data %d bytes, limit %d", len(m.Data), MaxShardSize)
	}
	b := make([]byte, 0, PutHeadLen+len(m.Data))
	b = append(b, m.ID[:]...)
	b = binary.BigEndian.AppendUint32(b, m.TTL)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Data)))
	return append(b, m.Data...), nil
}

// ParsePut decodes a PUT body. Data aliases b.
func ParsePut(b []byte) (Put, error) {
	var m Put
	if len(b) < PutHeadLen {
		return m, malformedf("parse PUT: %d bytes, want at least %d", len(b), PutHeadLen)
	}
	n := binary.BigEndian.Uint32(b[IDLen+ttlLen:])
	if n > MaxShardSize {
		return m, malformedf("parse PUT: data %d bytes, limit %d", n, MaxShardSize)
	}
	if want := PutHeadLen + int(n); len(b) != want {
		return m, malformedf("parse PUT: %d bytes, want %d", len(b), want)
	}
	m.ID = [IDLen]byte(b[:IDLen])
	m.TTL = binary.BigEndian.Uint32(b[IDLen:])
	m.Data = b[PutHeadLen:]
	return m, nil
}

// Get asks the relay for shard ID:
//
//	ID (32)
type Get struct {
	ID [IDLen]byte
}

// Marshal encodes m.
func (m *Get) Marshal() ([]byte, error) { return append([]byte(nil), m.ID[:]...), nil }

// ParseGet decodes a GET body.
func ParseGet(b []byte) (Get, error) {
	if len(b) != GetLen {
		return Get{}, malformedf("parse GET: %d bytes, want %d", len(b), GetLen)
	}
	return Get{ID: [IDLen]byte(b)}, nil
}

// Has asks whether the relay holds shard ID (OK or NOT_FOUND):
//
//	ID (32)
type Has struct {
	ID [IDLen]byte
}

// Marshal encodes m.
func (m *Has) Marshal() ([]byte, error) { return append([]byte(nil), m.ID[:]...), nil }

// ParseHas decodes a HAS body.
func ParseHas(b []byte) (Has, error) {
	if len(b) != HasLen {
		return Has{}, malformedf("parse HAS: %d bytes, want %d", len(b), HasLen)
	}
	return Has{ID: [IDLen]byte(b)}, nil
}

// Result answers a PUT, GET or HAS, in order (one request in flight per
// circuit, so no request ID):
//
//	Status (1) | Length (4, ≤ MaxShardSize) | Data (Length)
//
// Data is non-empty only for StatusOK answering a GET, and then it is the
// shard; any other status has Length 0. A status this version does not
// know parses (the enum grows) and the caller treats it as a failure.
type Result struct {
	Status Status
	Data   []byte
}

// Marshal encodes m.
func (m *Result) Marshal() ([]byte, error) {
	if len(m.Data) > MaxShardSize {
		return nil, malformedf("marshal RESULT: data %d bytes, limit %d", len(m.Data), MaxShardSize)
	}
	if m.Status != StatusOK && len(m.Data) != 0 {
		return nil, malformedf("marshal RESULT: %v carries %d data bytes", m.Status, len(m.Data))
	}
	b := make([]byte, 0, ResultHead+len(m.Data))
	b = append(b, byte(m.Status))
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Data)))
	return append(b, m.Data...), nil
}

// ParseResult decodes a RESULT body. Data aliases b.
func ParseResult(b []byte) (Result, error) {
	var m Result
	if len(b) < ResultHead {
		return m, malformedf("parse RESULT: %d bytes, want at least %d", len(b), ResultHead)
	}
	n := binary.BigEndian.Uint32(b[statusLen:])
	if n > MaxShardSize {
		return m, malformedf("parse RESULT: data %d bytes, limit %d", n, MaxShardSize)
	}
	if want := ResultHead + int(n); len(b) != want {
		return m, malformedf("parse RESULT: %d bytes, want %d", len(b), want)
	}
	m.Status = Status(b[0])
	if m.Status != StatusOK && n != 0 {
		return Result{}, malformedf("parse RESULT: %v carries %d data bytes", m.Status, n)
	}
	m.Data = b[ResultHead:]
	return m, nil
}
