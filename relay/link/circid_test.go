package link

import (
	"errors"
	"testing"

	"veil/onion"
)

// bareLink is enough of a Link for the circuit-ID table.
func bareLink(initiator bool) *Link {
	return &Link{initiator: initiator, circs: make(map[uint32]*circQueue), nextCirc: 1}
}

func TestCircIDHalves(t *testing.T) {
	ini, resp := bareLink(true), bareLink(false)
	seen := map[uint32]bool{}
	for range 1000 {
		a, err := ini.NewCircID()
		if err != nil {
			t.Fatal(err)
		}
		b, err := resp.NewCircID()
		if err != nil {
			t.Fatal(err)
		}
		if a == 0 || a&initiatorBit == 0 {
			t.Fatalf("initiator allocated %#x", a)
		}
		if b == 0 || b&initiatorBit != 0 {
			t.Fatalf("responder allocated %#x", b)
		}
		if seen[a] || seen[b] {
			t.Fatalf("id allocated twice: %#x %#x", a, b)
		}
		seen[a], seen[b] = true, true
		if !resp.PeerMayCreate(a) || !ini.PeerMayCreate(b) || ini.PeerMayCreate(a) || resp.PeerMayCreate(b) {
			t.Fatalf("PeerMayCreate wrong for %#x, %#x", a, b)
		}
		if err := resp.AcceptCircID(a); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []*Link{ini, resp} {
		if l.PeerMayCreate(0) {
			t.Error("PeerMayCreate(0)")
		}
	}
	if got := resp.Circuits(); got != 2000 {
		t.Errorf("responder has %d circuits, want 2000", got)
	}
}

func TestAcceptCircIDErrors(t *testing.T) {
	resp := bareLink(false)
	if err := resp.AcceptCircID(initiatorBit | 5); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   uint32
		want error
	}{
		{initiatorBit | 5, ErrCircIDInUse},
		{5, ErrCircIDWrongHalf},
		{0, ErrCircIDWrongHalf},
	} {
		err := resp.AcceptCircID(tc.id)
		if !errors.Is(err, tc.want) || !errors.Is(err, onion.ErrProtocol) {
			t.Errorf("AcceptCircID(%#x) = %v, want %v", tc.id, err, tc.want)
		}
	}
	resp.ReleaseCircID(initiatorBit | 5)
	if err := resp.AcceptCircID(initiatorBit | 5); err != nil {
		t.Errorf("after release: %v", err)
	}
	resp.ReleaseCircID(12345) // not in use: nothing happens
	if resp.Circuits() != 1 {
		t.Errorf("%d circuits, want 1", resp.Circuits())
	}
}

// TestCircIDLimit fills each end's half: the peer's flood does not stop this
// end from allocating, and a released ID makes room again.
func TestCircIDLimit(t *testing.T) {
	l := bareLink(true)
	for i := range uint32(maxCircuitsPerEnd) {
		if err := l.AcceptCircID(i + 1); err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
	}
	if err := l.AcceptCircID(maxCircuitsPerEnd + 1); !errors.Is(err, ErrTooManyCircuits) {
		t.Errorf("accept past the limit: %v", err)
	}
	var last uint32
	for i := range maxCircuitsPerEnd {
		id, err := l.NewCircID()
		if err != nil {
			t.Fatalf("allocate %d: %v", i, err)
		}
		last = id
	}
	if _, err := l.NewCircID(); !errors.Is(err, ErrTooManyCircuits) {
		t.Errorf("allocate past the limit: %v", err)
	}
	if l.Circuits() != MaxCircuitsPerLink {
		t.Errorf("%d circuits, want %d", l.Circuits(), MaxCircuitsPerLink)
	}
	l.ReleaseCircID(last)
	id, err := l.NewCircID()
	if err != nil {
		t.Fatal(err)
	}
	if id == last {
		t.Error("a released ID came straight back; IDs should be reused only after wrapping")
	}
}

// TestCircIDWrap: allocation wraps within the half, skipping 0 and IDs in
// use.
func TestCircIDWrap(t *testing.T) {
	l := bareLink(true)
	first, _ := l.NewCircID() // initiatorBit|1, kept in use
	l.nextCirc = initiatorBit - 1
	top, _ := l.NewCircID()
	next, _ := l.NewCircID()
	if first != initiatorBit|1 || top != 0xffffffff || next != initiatorBit|2 {
		t.Errorf("got %#x, %#x, %#x; want 0x80000001, 0xffffffff, 0x80000002", first, top, next)
	}
	r := bareLink(false)
	r.nextCirc = initiatorBit - 1
	top, _ = r.NewCircID()
	next, _ = r.NewCircID()
	if top != 0x7fffffff || next != 1 {
		t.Errorf("responder got %#x, %#x; want 0x7fffffff, 0x1", top, next)
	}
}
