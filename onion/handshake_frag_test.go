package onion

import (
	"net/netip"
	"testing"
)

// carry sends a message as relay cells of at most maxData bytes each, through
// real relay bodies and a Reassembler, and returns what arrived and how
// many cells it took.
func carry(t *testing.T, m *RelayMessage, maxData int) (RelayMessage, int) {
	t.Helper()
	cells, err := m.Fragments(maxData)
	if err != nil {
		t.Fatal(err)
	}
	var r Reassembler
	body := make([]byte, RelayBodyLen)
	for i := range cells {
		if err := MarshalRelayBody(body, &cells[i]); err != nil {
			t.Fatal(err)
		}
		var got RelayCell
		if err := ParseRelayBody(body, &got); err != nil {
			t.Fatal(err)
		}
		msg, done, err := r.Add(&got)
		if err != nil {
			t.Fatal(err)
		}
		if done != (i == len(cells)-1) {
			t.Fatalf("cell %d of %d: complete=%v", i, len(cells), done)
		}
		if done {
			msg.Body = append([]byte(nil), msg.Body...)
			return msg, len(cells)
		}
	}
	t.Fatal("message never completed")
	return RelayMessage{}, 0
}

// TestHandshakeSurvivesFragmentation runs an EXTEND/EXTENDED exchange with
// cells much smaller than the real ones, so that both handshake messages
// are cut into many fragments, and checks that it completes with the same
// number of cells in each direction (SPEC.md §7.5, §8).
func TestHandshakeSurvivesFragmentation(t *testing.T) {
	r := newTestRelay(t, "fragments")
	for _, maxData := range []int{MaxRelayData, 1000, 333, 64, 1} {
		hs, err := NewClientHandshake(r.id, r.onionPub, nil)
		if err != nil {
			t.Fatal(err)
		}
		ext := Extend{NodeID: r.id, AddrPort: netip.MustParseAddrPort("127.0.0.1:9001"), Handshake: hs.Request()}
		body, err := ext.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, cellsOut := carry(t, &RelayMessage{Cmd: RelayExtend, Body: body}, maxData)
		ext2, err := ParseExtend(got.Body)
		if err != nil {
			t.Fatal(err)
		}
		reply, relayKeys, err := r.identity.Respond(ext2.Handshake)
		if err != nil {
			t.Fatal(err)
		}
		back := Extended{Handshake: reply}
		body, err = back.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, cellsBack := carry(t, &RelayMessage{Cmd: RelayExtended, Body: body}, maxData)
		back2, err := ParseExtended(got.Body)
		if err != nil {
			t.Fatal(err)
		}
		clientKeys, err := hs.Finish(back2.Handshake)
		if err != nil {
			t.Fatalf("maxData %d: %v", maxData, err)
		}
		if *clientKeys != *relayKeys {
			t.Fatalf("maxData %d: keys differ", maxData)
		}
		if cellsOut != cellsBack {
			t.Fatalf("maxData %d: %d cells out, %d back", maxData, cellsOut, cellsBack)
		}
		if maxData == MaxRelayData && cellsOut != 1 {
			t.Fatalf("at the real cell size a handshake takes %d cells, want 1", cellsOut)
		}
	}
}
