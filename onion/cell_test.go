package onion

import (
	"bytes"
	"errors"
	"testing"
)

// checkStrictLength demands that parse accepts b and refuses every
// truncation of it and every one-byte extension (crypto/tls
// TestMarshalUnmarshal style).
func checkStrictLength(t *testing.T, name string, b []byte, parse func([]byte) error) {
	t.Helper()
	if err := parse(b); err != nil {
		t.Fatalf("%s: valid encoding refused: %v", name, err)
	}
	for i := range len(b) {
		if err := parse(bytes.Clone(b[:i])); err == nil {
			t.Fatalf("%s: truncation to %d of %d bytes accepted", name, i, len(b))
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: truncation to %d: error %v does not wrap ErrMalformed", name, i, err)
		}
	}
	for _, x := range []byte{0x00, 0x01, 0xff} {
		if err := parse(append(bytes.Clone(b), x)); err == nil {
			t.Fatalf("%s: extension by byte %#x accepted", name, x)
		}
	}
}

func marshalCell(t *testing.T, c *Cell) []byte {
	t.Helper()
	b := make([]byte, CellSize)
	if err := c.MarshalTo(b); err != nil {
		t.Fatalf("marshal %v: %v", c.Cmd, err)
	}
	return b
}

func testHandshake(seed byte) []byte {
	hs := make([]byte, HandshakeLen)
	for i := range hs {
		hs[i] = seed + byte(i*7)
	}
	return hs
}

func TestCellRoundTrip(t *testing.T) {
	mk := func(c *Cell, err error) *Cell {
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	relay := &Cell{CircID: 0xdeadbeef, Cmd: CellRelay}
	for i := range relay.Payload {
		relay.Payload[i] = byte(i)
	}
	early := *relay
	early.Cmd = CellRelayEarly
	cells := []*Cell{
		NewPaddingCell(0),
		NewPaddingCell(77), // PADDING may name a circuit (SPEC.md §2.2)
		mk(NewVersionsCell([]uint16{1})),
		mk(NewVersionsCell([]uint16{3, 2, 1, 0xffff})),
		mk(NewCreateCell(1, testHandshake(1))),
		mk(NewCreatedCell(0xffffffff, testHandshake(2))),
		mk(NewDestroyCell(7, DestroyTampered)),
		mk(NewDestroyCell(7, DestroyReason(200))), // unknown reasons parse
		relay, &early,
	}
	for _, c := range cells {
		b := marshalCell(t, c)
		var got Cell
		checkStrictLength(t, c.Cmd.String(), b, func(b []byte) error { return ParseCell(b, &got) })
		if got != *c {
			t.Fatalf("%v: round trip changed the cell", c.Cmd)
		}
		if b2 := marshalCell(t, &got); !bytes.Equal(b, b2) {
			t.Fatalf("%v: re-marshal differs", c.Cmd)
		}
	}
}

func TestCellAccessors(t *testing.T) {
	vs := []uint16{2, 1}
	c, err := NewVersionsCell(vs)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Versions(); err != nil || len(got) != 2 || got[0] != 2 || got[1] != 1 {
		t.Fatalf("Versions() = %v, %v", got, err)
	}
	hs := testHandshake(9)
	c, _ = NewCreateCell(5, hs)
	if got, err := c.CreateHandshake(); err != nil || !bytes.Equal(got, hs) {
		t.Fatalf("CreateHandshake() = %v", err)
	}
	if _, err := c.CreatedHandshake(); err == nil {
		t.Fatal("CreatedHandshake on a CREATE cell accepted")
	}
	got, _ := c.CreateHandshake()
	got[0] ^= 1
	if c.Payload[0] != hs[0] {
		t.Fatal("CreateHandshake aliases the cell")
	}
	c, _ = NewCreatedCell(5, hs)
	if got, err := c.CreatedHandshake(); err != nil || !bytes.Equal(got, hs) {
		t.Fatalf("CreatedHandshake() = %v", err)
	}
	c, _ = NewDestroyCell(5, DestroyTimeout)
	if r, err := c.DestroyReason(); err != nil || r != DestroyTimeout {
		t.Fatalf("DestroyReason() = %v, %v", r, err)
	}
	if _, err := c.Versions(); err == nil {
		t.Fatal("Versions on a DESTROY cell accepted")
	}
}

func TestCellInvalid(t *testing.T) {
	valid := func(cmd CellCmd, circ uint32) []byte {
		b := make([]byte, CellSize)
		b[0], b[1], b[2], b[3] = byte(circ>>24), byte(circ>>16), byte(circ>>8), byte(circ)
		b[4] = byte(cmd)
		switch cmd {
		case CellVersions:
			b[5], b[7] = 1, 1 // one version: 1
		case CellDestroy:
			b[5] = byte(DestroyFinished)
		}
		return b
	}
	set := func(b []byte, off int, v byte) []byte { b[off] = v; return b }
	tests := []struct {
		name string
		b    []byte
	}{
		{"unknown command", valid(7, 1)},
		{"unknown command 255", valid(255, 1)},
		{"PADDING nonzero", set(valid(CellPadding, 0), CellSize-1, 1)},
		{"VERSIONS on a circuit", valid(CellVersions, 3)},
		{"VERSIONS count 0", set(valid(CellVersions, 0), 5, 0)},
		{"VERSIONS count 17", set(valid(CellVersions, 0), 5, MaxVersions+1)},
		{"VERSIONS version 0", set(valid(CellVersions, 0), 7, 0)},
		{"VERSIONS duplicate", set(set(valid(CellVersions, 0), 5, 2), 9, 1)},
		{"VERSIONS padding", set(valid(CellVersions, 0), 8, 1)},
		{"CREATE circuit 0", valid(CellCreate, 0)},
		{"CREATE padding", set(valid(CellCreate, 1), CellHeaderLen+HandshakeLen, 1)},
		{"CREATED padding", set(valid(CellCreated, 1), CellSize-1, 1)},
		{"RELAY circuit 0", valid(CellRelay, 0)},
		{"RELAY_EARLY circuit 0", valid(CellRelayEarly, 0)},
		{"DESTROY circuit 0", valid(CellDestroy, 0)},
		{"DESTROY padding", set(valid(CellDestroy, 9), 6, 1)},
	}
	for _, tt := range tests {
		var c Cell
		err := ParseCell(tt.b, &c)
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %v does not wrap ErrMalformed", tt.name, err)
		}
	}
}

func TestCellConstructorsRefuse(t *testing.T) {
	if _, err := NewVersionsCell(nil); err == nil {
		t.Error("empty VERSIONS accepted")
	}
	if _, err := NewVersionsCell(make([]uint16, MaxVersions+1)); err == nil {
		t.Error("17 versions accepted")
	}
	if _, err := NewCreateCell(0, testHandshake(0)); err == nil {
		t.Error("CREATE on circuit 0 accepted")
	}
	if _, err := NewCreateCell(1, make([]byte, HandshakeLen-1)); err == nil {
		t.Error("short handshake accepted")
	}
	if _, err := NewDestroyCell(0, DestroyNone); err == nil {
		t.Error("DESTROY on circuit 0 accepted")
	}
	c := Cell{Cmd: CellRelay, CircID: 1}
	if err := c.MarshalTo(make([]byte, CellSize-1)); err == nil {
		t.Error("short buffer accepted")
	}
	c.Cmd = 99
	if err := c.MarshalTo(make([]byte, CellSize)); err == nil {
		t.Error("unknown command marshalled")
	}
}

func TestEnumStrings(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{CellRelayEarly.String(), "RELAY_EARLY"},
		{CellCmd(9).String(), "CellCmd(9)"},
		{DestroyTampered.String(), "TAMPERED"},
		{DestroyReason(13).String(), "DestroyReason(13)"},
		{RelayDrop.String(), "DROP"},
		{RelayCmd(42).String(), "RelayCmd(42)"},
		{EndHostUnreach.String(), "HOSTUNREACH"},
		{EndReason(0).String(), "EndReason(0)"},
	} {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}

// The cell header and payload must fill exactly one cell.
var _ [CellSize - CellHeaderLen - CellPayloadLen]struct{}
