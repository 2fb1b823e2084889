package onion

import (
	"errors"
	"testing"
)

func tagOf(i int) (t [TagLen]byte) {
	t[0], t[1], t[2] = byte(i), byte(i>>8), 0x5a
	return t
}

// A receiver that never reads gets exactly start cells, then the sender
// stops; nothing lets it send more without a SENDME.
func TestWindowSlowReader(t *testing.T) {
	s := NewSendWindow(CircWindowStart, CircWindowIncrement)
	r := NewRecvWindow(CircWindowStart, CircWindowIncrement)
	sent := 0
	for s.CanSend() {
		s.Sent(tagOf(sent))
		if err := r.Arrived(tagOf(sent)); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	if sent != CircWindowStart {
		t.Fatalf("sender stopped after %d cells, want %d", sent, CircWindowStart)
	}
	// The reader now consumes one increment: one SENDME, for the 64th cell.
	for i := range CircWindowIncrement {
		sendme, tag := r.Delivered()
		if sendme != (i == CircWindowIncrement-1) {
			t.Fatalf("delivery %d: sendme=%v", i, sendme)
		}
		if sendme {
			if tag != tagOf(CircWindowIncrement-1) {
				t.Fatalf("SENDME tag %x, want the 64th cell's", tag)
			}
			if err := s.Ack(tag); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s.Window() != CircWindowIncrement {
		t.Fatalf("window %d after one SENDME, want %d", s.Window(), CircWindowIncrement)
	}
}

// Sender and receiver in lock step over many windows: every SENDME is
// accepted, and the windows never drift.
func TestWindowSteadyState(t *testing.T) {
	s := NewSendWindow(StreamWindowStart, StreamWindowIncrement)
	r := NewRecvWindow(StreamWindowStart, StreamWindowIncrement)
	for i := range 10 * StreamWindowStart {
		if !s.CanSend() {
			t.Fatalf("stalled at cell %d", i)
		}
		s.Sent(tagOf(i))
		sendme, tag, err := r.Received(tagOf(i))
		if err != nil {
			t.Fatal(err)
		}
		if sendme {
			if tag != tagOf(i) || (i+1)%StreamWindowIncrement != 0 {
				t.Fatalf("cell %d: SENDME with tag %x", i, tag)
			}
			if err := s.Ack(tag); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s.Window() != StreamWindowStart {
		t.Fatalf("window drifted to %d", s.Window())
	}
}

func TestWindowBadSendme(t *testing.T) {
	s := NewSendWindow(128, 64)
	if err := s.Ack(tagOf(0)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("SENDME before any cell: %v", err)
	}
	for i := range 128 {
		s.Sent(tagOf(i))
	}
	if err := s.Ack(tagOf(64)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("SENDME with a later tag: %v", err)
	}
	if err := s.Ack(tagOf(62)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("SENDME with a wrong tag: %v", err)
	}
	if s.CanSend() {
		t.Fatal("refused SENDMEs added credit")
	}
	if err := s.Ack(tagOf(63)); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(tagOf(127)); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(tagOf(127)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("a third SENDME acks too much: %v", err)
	}
	if s.Window() != 128 {
		t.Fatalf("window %d", s.Window())
	}
}

func TestWindowOverrun(t *testing.T) {
	r := NewRecvWindow(128, 64)
	for i := range 128 {
		if err := r.Arrived(tagOf(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Arrived(tagOf(128)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("overrun: %v", err)
	}
	// With Received (deliver at once) the window refills, but a sender that
	// ignores it still runs out after start + the credit it was given.
	r = NewRecvWindow(128, 64)
	for i := range 128 {
		if _, _, err := r.Received(tagOf(i)); err != nil {
			t.Fatal(err)
		}
	}
	if r.window != 128 {
		t.Fatalf("receive window %d after delivering everything", r.window)
	}
}

func TestWindowNoAllocs(t *testing.T) {
	s := NewSendWindow(CircWindowStart, CircWindowIncrement)
	r := NewRecvWindow(CircWindowStart, CircWindowIncrement)
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		s.Sent(tagOf(i))
		if sendme, tag, _ := r.Received(tagOf(i)); sendme {
			if s.Ack(tag) != nil {
				t.Fatal("ack refused")
			}
		}
		i++
	})
	if n != 0 {
		t.Fatalf("%v allocations per cell", n)
	}
}

func TestWindowParamsPanic(t *testing.T) {
	for _, p := range [][2]int{{0, 0}, {64, 0}, {100, 64}, {32, 64}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewSendWindow(%d, %d) did not panic", p[0], p[1])
				}
			}()
			NewSendWindow(p[0], p[1])
		}()
	}
}
