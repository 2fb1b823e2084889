package splice

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (near, far *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialed := make(chan net.Conn, 1)
	go func() {
		c, _ := net.Dial("tcp", ln.Addr().String())
		dialed <- c
	}()
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	b := <-dialed
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

// spliced runs Run between two TCP connections and returns their far
// ends: what a client and a server hold.
func spliced(t *testing.T, o Options) (client, server *net.TCPConn, done chan error) {
	t.Helper()
	a, client := tcpPair(t)
	b, server := tcpPair(t)
	done = make(chan error, 1)
	go func() { done <- Run(a, b, o) }()
	return client, server, done
}

func wait(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(2 * time.Minute):
		t.Fatal("splice never ended")
		return nil
	}
}

// A half-close crosses the splice, the answer after it arrives whole, and
// the splice ends cleanly once both directions have.
func TestHalfCloseCrosses(t *testing.T) {
	client, server, done := spliced(t, Options{Linger: time.Minute})
	client.Write([]byte("request"))
	client.CloseWrite()
	got, err := io.ReadAll(server)
	if err != nil || string(got) != "request" {
		t.Fatalf("server read %q, %v", got, err)
	}
	server.Write([]byte("answer"))
	server.CloseWrite()
	got, err = io.ReadAll(client)
	if err != nil || string(got) != "answer" {
		t.Fatalf("client read %q, %v", got, err)
	}
	if err := wait(t, done); err != nil {
		t.Fatalf("splice ended with %v, want nil", err)
	}
}

// A server that ignores the client's half-close and says nothing is let go
// after the linger: both sockets close.
func TestLingerReleasesAQuietPeer(t *testing.T) {
	client, server, done := spliced(t, Options{Linger: 200 * time.Millisecond})
	client.Close()
	if err := wait(t, done); !errors.Is(err, ErrIdle) {
		t.Fatalf("splice ended with %v, want ErrIdle", err)
	}
	server.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.ReadAll(server); err != nil {
		t.Fatalf("server side not closed cleanly: %v", err)
	}
}

// A peer that keeps sending after the other side's half-close is not cut
// by the linger: only silence is.
func TestLingerSparesABusyPeer(t *testing.T) {
	client, server, done := spliced(t, Options{Linger: time.Second})
	client.CloseWrite()
	for range 20 {
		if _, err := server.Write([]byte("tick")); err != nil {
			t.Fatalf("server write: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	server.CloseWrite()
	got, _ := io.ReadAll(client)
	if len(got) != 80 {
		t.Fatalf("client read %d bytes, want 80", len(got))
	}
	if err := wait(t, done); err != nil {
		t.Fatalf("splice ended with %v, want nil", err)
	}
}
