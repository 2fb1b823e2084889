package onion

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}

func TestFragmentsReassemble(t *testing.T) {
	for _, tt := range []struct{ body, maxData, cells int }{
		{0, 10, 1}, {1, 10, 1}, {10, 10, 1}, {11, 10, 2}, {100, 10, 10},
		{MaxRelayData, MaxRelayData, 1}, {MaxRelayData + 1, MaxRelayData, 2},
		{MaxRelayMessageLen, MaxRelayData, (MaxRelayMessageLen + MaxRelayData - 1) / MaxRelayData},
	} {
		m := RelayMessage{Cmd: RelayData, StreamID: 7, Body: pattern(tt.body)}
		cells, err := m.Fragments(tt.maxData)
		if err != nil {
			t.Fatal(err)
		}
		if len(cells) != tt.cells {
			t.Fatalf("%d bytes at %d: %d cells, want %d", tt.body, tt.maxData, len(cells), tt.cells)
		}
		var r Reassembler
		for i := range cells {
			// Each cell goes through the wire encoding, in a reused buffer.
			wire := make([]byte, RelayBodyLen)
			if err := MarshalRelayBody(wire, &cells[i]); err != nil {
				t.Fatal(err)
			}
			var c RelayCell
			if err := ParseRelayBody(wire, &c); err != nil {
				t.Fatal(err)
			}
			if c.More() != (i < len(cells)-1) || len(c.Data) == 0 && len(cells) > 1 {
				t.Fatalf("cell %d of %d: flags %d, %d bytes", i, len(cells), c.Flags, len(c.Data))
			}
			got, done, err := r.Add(&c)
			if err != nil {
				t.Fatal(err)
			}
			if done != (i == len(cells)-1) {
				t.Fatalf("cell %d of %d: complete=%v", i, len(cells), done)
			}
			if !done {
				continue
			}
			if got.Cmd != m.Cmd || got.StreamID != m.StreamID || !bytes.Equal(got.Body, m.Body) {
				t.Fatalf("%d bytes: reassembled %v/%d/%d bytes", tt.body, got.Cmd, got.StreamID, len(got.Body))
			}
			if len(cells) > 1 {
				clear(wire) // the cell buffer is reused
				if !bytes.Equal(got.Body, m.Body) {
					t.Fatal("multi-cell Body aliases the last cell")
				}
			}
		}
		if r.InProgress() {
			t.Fatal("reassembler still in progress")
		}
	}
}

func TestFragmentsRefuse(t *testing.T) {
	for name, tt := range map[string]struct {
		m       RelayMessage
		maxData int
	}{
		"oversize":    {RelayMessage{Cmd: RelayData, Body: make([]byte, MaxRelayMessageLen+1)}, MaxRelayData},
		"maxData 0":   {RelayMessage{Cmd: RelayData}, 0},
		"maxData big": {RelayMessage{Cmd: RelayData}, MaxRelayData + 1},
		"command 0":   {RelayMessage{}, 10},
	} {
		if _, err := tt.m.Fragments(tt.maxData); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestReassemblerRefuses(t *testing.T) {
	more := func(cmd RelayCmd, sid uint16, n int) *RelayCell {
		return &RelayCell{Cmd: cmd, Flags: RelayFlagMore, StreamID: sid, Data: make([]byte, n)}
	}
	last := func(cmd RelayCmd, sid uint16) *RelayCell { return &RelayCell{Cmd: cmd, StreamID: sid, Data: []byte{1}} }
	for name, seq := range map[string][]*RelayCell{
		"other stream":     {more(RelayData, 1, 10), last(RelayData, 2)},
		"other command":    {more(RelayData, 1, 10), last(RelayEnd, 1)},
		"empty MORE":       {more(RelayData, 1, 0)},
		"DROP interleaved": {more(RelayData, 1, 10), last(RelayDrop, 0)},
		"reserved flag":    {{Cmd: RelayData, Flags: 2}},
		"command 0":        {{Cmd: 0}},
		"oversize message": append(repeatCell(more(RelayData, 1, MaxRelayData), MaxRelayMessageLen/MaxRelayData), more(RelayData, 1, MaxRelayData)),
	} {
		var r Reassembler
		var err error
		for _, c := range seq {
			if _, _, err = r.Add(c); err != nil {
				break
			}
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v wraps neither sentinel", name, err)
		}
		if r.InProgress() {
			t.Errorf("%s: not reset after the error", name)
		}
	}
}

func repeatCell(c *RelayCell, n int) []*RelayCell {
	s := make([]*RelayCell, n)
	for i := range s {
		s[i] = c
	}
	return s
}

func TestReassemblerSingleCellAliases(t *testing.T) {
	var r Reassembler
	c := RelayCell{Cmd: RelayData, StreamID: 1, Data: []byte("xyz")}
	m, done, err := r.Add(&c)
	if !done || err != nil || &m.Body[0] != &c.Data[0] {
		t.Fatal("single-cell message should alias the cell data")
	}
	if n := testing.AllocsPerRun(100, func() { r.Add(&c) }); n != 0 {
		t.Fatalf("%v allocations for a single-cell message", n)
	}
}

// EXTEND and EXTENDED must take the same number of cells at any cell size,
// so their cell counts do not tell IPv4 from IPv6 or one direction from
// the other (SPEC.md §7.5).
func TestExtendExtendedSameCells(t *testing.T) {
	ext4, _ := (&Extend{AddrPort: netip.MustParseAddrPort("192.0.2.1:1"), Handshake: testHandshake(1)}).Marshal()
	ext6, _ := (&Extend{AddrPort: netip.MustParseAddrPort("[2001:db8::1]:1"), Handshake: testHandshake(1)}).Marshal()
	extd, _ := (&Extended{Handshake: testHandshake(2)}).Marshal()
	for _, maxData := range []int{1, 7, 100, 498, 1000, 1332, 1333, MaxRelayData} {
		var counts []int
		for _, body := range [][]byte{ext4, ext6, extd} {
			m := RelayMessage{Cmd: RelayExtend, Body: body}
			cells, err := m.Fragments(maxData)
			if err != nil {
				t.Fatal(err)
			}
			counts = append(counts, len(cells))
		}
		if counts[0] != counts[1] || counts[1] != counts[2] {
			t.Errorf("maxData %d: cell counts %v differ", maxData, counts)
		}
	}
}
