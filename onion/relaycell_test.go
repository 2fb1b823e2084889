package onion

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestRelayBodyRoundTrip(t *testing.T) {
	full := bytes.Repeat([]byte{0xab}, MaxRelayData)
	cells := []RelayCell{
		{Cmd: RelayData, StreamID: 1, Data: []byte("hello")},
		{Cmd: RelayData, Flags: RelayFlagMore, StreamID: 0xffff, Data: full},
		{Cmd: RelayDrop, Data: []byte{}},
		{Cmd: RelayCmd(200), StreamID: 3, Data: []byte{0}}, // unknown commands parse
	}
	for _, c := range cells {
		b := make([]byte, RelayBodyLen)
		for i := range b {
			b[i] = 0xee // MarshalRelayBody must zero the padding
		}
		if err := MarshalRelayBody(b, &c); err != nil {
			t.Fatalf("%v: %v", c.Cmd, err)
		}
		var got RelayCell
		checkStrictLength(t, c.Cmd.String(), b, func(b []byte) error { return ParseRelayBody(b, &got) })
		if got.Cmd != c.Cmd || got.Flags != c.Flags || got.StreamID != c.StreamID || !bytes.Equal(got.Data, c.Data) {
			t.Fatalf("%v: round trip gave %+v", c.Cmd, got)
		}
		b2 := make([]byte, RelayBodyLen)
		if err := MarshalRelayBody(b2, &got); err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("%v: re-marshal differs (%v)", c.Cmd, err)
		}
	}
}

func TestRelayBodyInPlace(t *testing.T) {
	b := make([]byte, RelayBodyLen)
	copy(b[RelayHeaderLen:], "in place")
	c := RelayCell{Cmd: RelayData, StreamID: 9, Data: b[RelayHeaderLen : RelayHeaderLen+8]}
	if err := MarshalRelayBody(b, &c); err != nil {
		t.Fatal(err)
	}
	var got RelayCell
	if err := ParseRelayBody(b, &got); err != nil || string(got.Data) != "in place" {
		t.Fatalf("got %q, %v", got.Data, err)
	}
}

func TestRelayBodyInvalid(t *testing.T) {
	valid := func() []byte {
		b := make([]byte, RelayBodyLen)
		b[0] = byte(RelayData)
		binary.BigEndian.PutUint16(b[2:], 1)
		binary.BigEndian.PutUint16(b[4:], 3)
		copy(b[6:], "abc")
		return b
	}
	set := func(off int, v byte) []byte { b := valid(); b[off] = v; return b }
	tests := []struct {
		name string
		b    []byte
	}{
		{"command 0", set(0, 0)},
		{"reserved flag", set(1, 2)},
		{"reserved flag high", set(1, 0x81)},
		{"length over max", func() []byte {
			b := valid()
			binary.BigEndian.PutUint16(b[4:], MaxRelayData+1)
			return b
		}()},
		{"length 0xffff", func() []byte { b := valid(); b[4], b[5] = 0xff, 0xff; return b }()},
		{"padding right after data", set(RelayHeaderLen+3, 1)},
		{"padding at end", set(RelayBodyLen-1, 1)},
	}
	for _, tt := range tests {
		var c RelayCell
		if err := ParseRelayBody(tt.b, &c); err == nil {
			t.Errorf("%s: accepted", tt.name)
		} else if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v does not wrap ErrMalformed", tt.name, err)
		}
	}
	bad := []RelayCell{
		{Cmd: 0, Data: nil},
		{Cmd: RelayData, Flags: 4},
		{Cmd: RelayData, Data: make([]byte, MaxRelayData+1)},
	}
	for _, c := range bad {
		if err := MarshalRelayBody(make([]byte, RelayBodyLen), &c); err == nil {
			t.Errorf("marshal %+v accepted", c.Flags)
		}
	}
	if err := MarshalRelayBody(make([]byte, RelayBodyLen+1), &RelayCell{Cmd: RelayData}); err == nil {
		t.Error("long buffer accepted")
	}
}

func TestRelayBodyNoAllocs(t *testing.T) {
	b := make([]byte, RelayBodyLen)
	c := RelayCell{Cmd: RelayData, StreamID: 1, Data: make([]byte, 1000)}
	var got RelayCell
	n := testing.AllocsPerRun(100, func() {
		if MarshalRelayBody(b, &c) != nil || ParseRelayBody(b, &got) != nil {
			t.Fatal("failed")
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per marshal+parse, want 0", n)
	}
}

func BenchmarkMarshalRelayBody(b *testing.B) {
	dst := make([]byte, RelayBodyLen)
	c := RelayCell{Cmd: RelayData, StreamID: 1, Data: make([]byte, MaxRelayData/2)}
	b.ReportAllocs()
	b.SetBytes(RelayBodyLen)
	for b.Loop() {
		if err := MarshalRelayBody(dst, &c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRelayBody(b *testing.B) {
	src := make([]byte, RelayBodyLen)
	c := RelayCell{Cmd: RelayData, StreamID: 1, Data: make([]byte, MaxRelayData/2)}
	if err := MarshalRelayBody(src, &c); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(RelayBodyLen)
	for b.Loop() {
		if err := ParseRelayBody(src, &c); err != nil {
			b.Fatal(err)
		}
	}
}
