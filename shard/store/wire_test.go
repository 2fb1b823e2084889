package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// wireMsg is any storage message, for the table-driven tests and the fuzz
// target: a type byte picks the parser.
type wireMsg interface{ Marshal() ([]byte, error) }

func parseWire(t MsgType, b []byte) (wireMsg, error) {
	switch t {
	case MsgPut:
		m, err := ParsePut(b)
		return &m, err
	case MsgGet:
		m, err := ParseGet(b)
		return &m, err
	case MsgHas:
		m, err := ParseHas(b)
		return &m, err
	case MsgResult:
		m, err := ParseResult(b)
		return &m, err
	}
	return nil, malformedf("unknown message type %v", t)
}

var wireID = [IDLen]byte{0: 0xaa, 31: 0x55}

func validWire() []struct {
	typ MsgType
	msg wireMsg
} {
	return []struct {
		typ MsgType
		msg wireMsg
	}{
		{MsgPut, &Put{ID: wireID, TTL: 3600, Data: []byte("shard bytes")}},
		{MsgPut, &Put{ID: wireID, TTL: 0, Data: []byte{}}},
		{MsgPut, &Put{ID: wireID, TTL: ^uint32(0), Data: make([]byte, MaxShardSize)}},
		{MsgGet, &Get{ID: wireID}},
		{MsgHas, &Has{ID: wireID}},
		{MsgResult, &Result{Status: StatusOK, Data: []byte("shard bytes")}},
		{MsgResult, &Result{Status: StatusOK, Data: []byte{}}},
		{MsgResult, &Result{Status: StatusNotFound, Data: []byte{}}},
		{MsgResult, &Result{Status: StatusBadRequest, Data: []byte{}}},
		{MsgResult, &Result{Status: StatusOK, Data: make([]byte, MaxShardSize)}},
	}
}

func TestWireRoundTrip(t *testing.T) {
	for _, tt := range validWire() {
		b, err := tt.msg.Marshal()
		if err != nil {
			t.Fatalf("%v: marshal: %v", tt.typ, err)
		}
		m, err := parseWire(tt.typ, b)
		if err != nil {
			t.Fatalf("%v: parse: %v", tt.typ, err)
		}
		b2, _ := m.Marshal()
		if !bytes.Equal(b, b2) {
			t.Fatalf("%v: re-marshal differs", tt.typ)
		}
		// Every truncation, and one byte too many, is refused.
		for n := range len(b) {
			if _, err := parseWire(tt.typ, b[:n]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%v: truncated to %d of %d bytes: %v", tt.typ, n, len(b), err)
			}
			if len(b) > 4096 && n == 4096 {
				break // the large ones: the header truncations are what matter
			}
		}
		if _, err := parseWire(tt.typ, append(b[:len(b):len(b)], 0)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%v: a trailing byte accepted: %v", tt.typ, err)
		}
	}
}

// TestWireLayout pins the byte layout SPEC gives.
func TestWireLayout(t *testing.T) {
	b, _ := (&Put{ID: wireID, TTL: 0x01020304, Data: []byte{9, 8}}).Marshal()
	want := append(append(wireID[:], 1, 2, 3, 4, 0, 0, 0, 2), 9, 8)
	if !bytes.Equal(b, want) {
		t.Fatalf("PUT = %x, want %x", b, want)
	}
	b, _ = (&Result{Status: StatusOK, Data: []byte{7}}).Marshal()
	if !bytes.Equal(b, []byte{0, 0, 0, 0, 1, 7}) {
		t.Fatalf("RESULT = %x", b)
	}
	b, _ = (&Result{Status: StatusConflict}).Marshal()
	if !bytes.Equal(b, []byte{3, 0, 0, 0, 0}) {
		t.Fatalf("RESULT CONFLICT = %x", b)
	}
	if PutHeadLen != 40 || ResultHead != 5 || GetLen != 32 || HasLen != 32 {
		t.Fatal("sizes changed")
	}
}

func TestWireRefused(t *testing.T) {
	over := make([]byte, MaxShardSize+1)
	if _, err := (&Put{Data: over}).Marshal(); !errors.Is(err, ErrMalformed) {
		t.Errorf("marshal oversize PUT: %v", err)
	}
	if _, err := (&Result{Data: over}).Marshal(); !errors.Is(err, ErrMalformed) {
		t.Errorf("marshal oversize RESULT: %v", err)
	}
	if _, err := (&Result{Status: StatusQuota, Data: []byte{1}}).Marshal(); !errors.Is(err, ErrMalformed) {
		t.Errorf("marshal failure RESULT with data: %v", err)
	}
	// A length field over the limit is refused before the length check.
	put := make([]byte, PutHeadLen)
	binary.BigEndian.PutUint32(put[IDLen+4:], MaxShardSize+1)
	if _, err := ParsePut(put); !errors.Is(err, ErrMalformed) {
		t.Errorf("PUT length over limit: %v", err)
	}
	if _, err := ParseResult([]byte{0, 0xff, 0xff, 0xff, 0xff}); !errors.Is(err, ErrMalformed) {
		t.Errorf("RESULT length over limit: %v", err)
	}
	if _, err := ParseResult([]byte{2, 0, 0, 0, 1, 0}); !errors.Is(err, ErrMalformed) {
		t.Errorf("QUOTA with data: %v", err)
	}
	// An unknown status parses (the enum is append-only) and is a failure.
	m, err := ParseResult([]byte{99, 0, 0, 0, 0})
	if err != nil || m.Status.Err() == nil {
		t.Errorf("unknown status: %v, %v", m, err)
	}
	if MsgType(9).String() != "MsgType(9)" || MsgPut.String() != "PUT" || StatusRateLimited.String() != "RATE_LIMITED" {
		t.Error("names")
	}
}

func FuzzParseWire(f *testing.F) {
	// The first byte picks the message type, the rest is the body.
	seed := func(t MsgType, body ...byte) []byte { return append([]byte{byte(t)}, body...) }
	id := wireID[:]
	put := func(ttl, n uint32, data ...byte) []byte {
		b := append([]byte(nil), id...)
		b = binary.BigEndian.AppendUint32(b, ttl)
		b = binary.BigEndian.AppendUint32(b, n)
		return append(b, data...)
	}
	f.Add(seed(MsgPut, put(3600, 3, 'a', 'b', 'c')...)) // valid PUT, 3 bytes, 1 hour
	f.Add(seed(MsgPut, put(0, 0)...))                   // valid PUT, empty, default TTL
	f.Add(seed(MsgPut, put(1, 4, 'a')...))              // invalid: PUT shorter than its length
	f.Add(seed(MsgPut, put(1, 0, 'a')...))              // invalid: PUT longer than its length
	f.Add(seed(MsgPut, put(1, MaxShardSize+1)...))      // invalid: PUT length over the limit
	f.Add(seed(MsgPut, id[:20]...))                     // invalid: PUT truncated in the ID
	f.Add(seed(MsgGet, id...))                          // valid GET
	f.Add(seed(MsgGet, append(id, 0)...))               // invalid: GET too long
	f.Add(seed(MsgHas, id...))                          // valid HAS
	f.Add(seed(MsgHas, id[:31]...))                     // invalid: HAS too short
	f.Add(seed(MsgResult, 0, 0, 0, 0, 2, 'h', 'i'))     // valid RESULT OK with data
	f.Add(seed(MsgResult, 1, 0, 0, 0, 0))               // valid RESULT NOT_FOUND
	f.Add(seed(MsgResult, 200, 0, 0, 0, 0))             // valid RESULT, status from a later version
	f.Add(seed(MsgResult, 5, 0, 0, 0, 1, 'x'))          // invalid: CORRUPT with data
	f.Add(seed(MsgResult, 0, 0, 0))                     // invalid: RESULT truncated in the length
	f.Add(seed(0, id...))                               // invalid: reserved type
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		m, err := parseWire(MsgType(b[0]), b[1:])
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("parse error %v does not wrap ErrMalformed", err)
			}
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("parsed %x but cannot marshal it: %v", b, err)
		}
		if !bytes.Equal(out, b[1:]) {
			t.Fatalf("re-marshal differs:\n in  %x\n out %x", b[1:], out)
		}
	})
}
