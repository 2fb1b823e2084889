package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"veil/relay/testnet"
)

// dialWeb GETs path from the web server through the proxy and returns the
// body as it arrives; closing it closes the connection.
func dialWeb(ctx context.Context, m testnet.Manifest, web netip.AddrPort, path, user string) (io.ReadCloser, error) {
	c, err := testnet.DialSOCKS(ctx, m.Socks, web, user, "x")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, web)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{resp.Body, c}, nil
}

// TestHungRelayRoutedAround: the client's guard stops answering without
// closing its connections (SIGSTOP). The stream in flight through it ends
// with an error instead of stalling for the whole stop, and new streams
// succeed through other relays while it is still stopped.
func TestHungRelayRoutedAround(t *testing.T) {
	_, m := startTestnet(t, 6)
	web := webAddr(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := fetch(ctx, m, web, 1<<10, ""); err != nil {
		t.Fatalf("before the stop: %v", err)
	}

	// A download that would run for hours, in flight when the guard hangs.
	inFlight, err := dialWeb(ctx, m, web, "/bytes/1099511627776", "")
	if err != nil {
		t.Fatal(err)
	}
	defer inFlight.Close()
	if _, err := io.CopyN(io.Discard, inFlight, 1<<20); err != nil {
		t.Fatalf("download before the stop: %v", err)
	}
	ended := make(chan time.Time, 1)
	go func() {
		io.Copy(io.Discard, inFlight)
		ended <- time.Now()
	}()

	pid := guardPID(t, m)
	stopped := time.Now()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })

	// New streams while the guard is still stopped. The deadline only
	// catches a hang: on the code before, none of them ever worked.
	for i := range 4 {
		start := time.Now()
		if err := fetch(ctx, m, web, 1<<10, ""); err != nil {
			t.Fatalf("stream %d with the guard stopped: %v", i+1, err)
		}
		t.Logf("stream %d with the guard stopped: %v after the stop, took %v",
			i+1, time.Since(stopped).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
	select {
	case at := <-ended:
		t.Logf("the stream in flight ended %v after the stop", at.Sub(stopped).Round(time.Millisecond))
	case <-ctx.Done():
		t.Fatal("the stream in flight through the stopped guard never ended")
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the stopped guard is gone: %v", err)
	}
}
