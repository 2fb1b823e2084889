package dirserve

import (
	"net"
	"testing"
	"time"
)

// TestLimitListener checks that a third connection waits until one of two
// is closed, and that Close stops a blocked Accept.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newLimitListener(inner, 2)
	accepted := make(chan net.Conn, 3)
	stopped := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				stopped <- err
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first := <-accepted
	<-accepted
	select {
	case <-accepted:
		t.Fatal("third connection accepted while two are open")
	case <-time.After(100 * time.Millisecond):
	}
	first.Close()
	first.Close() // a second Close gives back nothing more
	third := <-accepted
	third.Close()
	ln.Close()
	select {
	case err := <-stopped:
		if err == nil {
			t.Fatal("Accept after Close returned no error")
		}
	case <-time.After(hangTimeout):
		t.Fatal("Accept did not return after Close")
	}
	if len(ln.sem) != 1 {
		t.Fatalf("%d tokens held, want 1 (the second connection)", len(ln.sem))
	}
}
