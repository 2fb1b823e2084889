package link

import (
	"context"
	"fmt"
	"testing"
	"time"

	"veil/directory/linkauth"
	"veil/onion"
)

// TestUnwrappedConn: a link over a connection that WrapConn did not wrap
// (one write per TLS record) talks to a wrapped one, and bursts arrive
// whole and in order both ways.
func TestUnwrappedConn(t *testing.T) {
	checkLeaks(t)
	s := startServer(t, newIdentity(t))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cc, err := linkauth.Dial(ctx, "tcp", s.addr, s.id.ID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cc.NetConn().(*batchConn); ok {
		t.Fatal("linkauth.Dial's connection is wrapped")
	}
	sc := s.accept(t)
	if _, ok := sc.NetConn().(*batchConn); !ok {
		t.Fatal("the test server's connection is not wrapped")
	}

	const n = 3000
	type end struct {
		next uint64
		got  chan error
	}
	recv := func(e *end) func(*Link, *onion.Cell) {
		return func(_ *Link, c *onion.Cell) {
			var want [onion.CellPayloadLen]byte
			fillPayload(&want, 1, e.next)
			if c.Payload != want {
				select {
				case e.got <- fmt.Errorf("cell %d differs", e.next):
				default:
				}
			}
			Release(c)
			if e.next++; e.next == n {
				e.got <- nil
			}
		}
	}
	ends := [2]*end{{got: make(chan error, 1)}, {got: make(chan error, 1)}}
	var resp *Link
	var respErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, respErr = Establish(ctx, sc, Options{Handler: newHandler(recv(ends[1]))})
	}()
	ini, err := Establish(ctx, cc, Options{Handler: newHandler(recv(ends[0])), Initiator: true})
	<-done
	if err != nil || respErr != nil {
		t.Fatalf("establish: %v, %v", err, respErr)
	}
	closeAtCleanup(t, ini)
	closeAtCleanup(t, resp)
	if ini.bc != nil || resp.bc == nil {
		t.Fatal("links did not find out which connection is wrapped")
	}
	for _, l := range []*Link{ini, resp} {
		go func() {
			for seq := range uint64(n) {
				if err := l.Send(ctx, relayCell(1, seq)); err != nil {
					t.Errorf("send %d: %v", seq, err)
					return
				}
			}
		}()
	}
	for i, e := range ends {
		select {
		case err := <-e.got:
			if err != nil {
				t.Errorf("end %d: %v", i, err)
			}
		case <-time.After(testTimeout):
			t.Fatalf("end %d: only %d cells", i, e.next)
		}
	}
}
