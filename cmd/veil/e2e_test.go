package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"veil/relay/testnet"
)

// startTestnet runs `veil testnet` as a process and returns its manifest.
func startTestnet(t *testing.T, relays int) (*proc, testnet.Manifest) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tn")
	p := startProc(t, "testnet", "--dir", dir, "--relays", fmt.Sprint(relays))
	deadline := time.Now().Add(60 * time.Second)
	for {
		raw, err := os.ReadFile(filepath.Join(dir, testnet.ManifestName))
		if err == nil {
			var m testnet.Manifest
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			return p, m
		}
		if time.Now().After(deadline) {
			t.Fatal("testnet never became usable")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func webAddr(t *testing.T, m testnet.Manifest) netip.AddrPort {
	u, err := url.Parse(m.Web)
	if err != nil {
		t.Fatal(err)
	}
	return netip.MustParseAddrPort(u.Host)
}

// fetch GETs /bytes/n through the proxy and checks every byte against the
// web server's pattern, a 64 KiB block at a time.
func fetch(ctx context.Context, m testnet.Manifest, web netip.AddrPort, n int64, user string) error {
	c, err := testnet.DialSOCKS(ctx, m.Socks, web, user, "x")
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /bytes/%d HTTP/1.0\r\nHost: %s\r\n\r\n", n, web)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	block := make([]byte, 64<<10) // the pattern repeats every 64 KiB
	for i := range block {
		block[i] = testnet.Pattern(int64(i))
	}
	buf := make([]byte, len(block))
	var got int64
	for {
		k, err := io.ReadFull(resp.Body, buf)
		if k > 0 && !bytes.Equal(buf[:k], block[:k]) {
			return fmt.Errorf("bytes differ in the 64 KiB block at offset %d", got)
		}
		got += int64(k)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fmt.Errorf("after %d bytes: %w", got, err)
		}
	}
	if got != n {
		return fmt.Errorf("got %d bytes, want %d", got, n)
	}
	return nil
}

// socksReply sends a no-auth greeting and one raw request, and returns
// the reply code.
func socksReply(t *testing.T, proxy string, req []byte) byte {
	t.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte{5, 1, 0})
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil {
		t.Fatal(err)
	}
	c.Write(req)
	var rep [2]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		t.Fatal(err)
	}
	return rep[1]
}

// TestEndToEnd runs a testnet of real processes and uses it as a SOCKS
// client would: a 100 MB body arrives bit-exact; 32 concurrent streams on
// isolated circuits all complete; the exit refuses what its policy
// forbids; a relay killed mid-stream ends streams through it with an
// error, not a hang, and new streams succeed on other circuits.
func TestEndToEnd(t *testing.T) {
	_, m := startTestnet(t, 6)
	web := webAddr(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	start := time.Now()
	if err := fetch(ctx, m, web, 100<<20, ""); err != nil {
		t.Fatalf("100 MB: %v", err)
	}
	t.Logf("100 MB through three relays in %v", time.Since(start))

	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- fetch(ctx, m, web, 1<<20, fmt.Sprint("user", i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent stream: %v", err)
		}
	}

	// Private destinations are refused: no exit allows them (reply 0x02).
	_, err := testnet.DialSOCKS(ctx, m.Socks, netip.MustParseAddrPort("10.1.2.3:80"), "", "")
	var re *testnet.ReplyError
	if !errors.As(err, &re) || re.Code != 0x02 {
		t.Fatalf("private destination: %v", err)
	}

	// SOCKS edge cases at the real proxy: BIND and UDP ASSOCIATE are not
	// supported (0x07), an unknown address type gets 0x08, and a client
	// that sends garbage is dropped while others are served.
	for _, tc := range []struct {
		req  []byte
		want byte
	}{
		{[]byte{5, 2, 0, 1, 127, 0, 0, 1, 0, 80}, 0x07},
		{[]byte{5, 3, 0, 1, 0, 0, 0, 0, 0, 0}, 0x07},
		{[]byte{5, 1, 0, 9, 1, 2, 3, 4, 0, 80}, 0x08},
	} {
		if got := socksReply(t, m.Socks, tc.req); got != tc.want {
			t.Errorf("request %x: reply %#02x, want %#02x", tc.req, got, tc.want)
		}
	}
	garbage, err := net.Dial("tcp", m.Socks)
	if err != nil {
		t.Fatal(err)
	}
	garbage.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	garbage.SetReadDeadline(time.Now().Add(15 * time.Second))
	// Dropped means closed, cleanly or with a reset, not left hanging.
	if _, err := io.ReadAll(garbage); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("a garbage client was not dropped")
	}
	garbage.Close()
	if err := fetch(ctx, m, web, 1<<10, ""); err != nil {
		t.Fatalf("after a garbage client: %v", err)
	}

	// Kill relays one at a time under a long download until one of them
	// was on its circuit; the download must fail promptly, and a new
	// stream must work on another circuit.
	long := make(chan error, 1)
	go func() { long <- fetch(ctx, m, web, 1<<40, "long") }()
	time.Sleep(500 * time.Millisecond)
	killed := 0
	for _, r := range m.Relays {
		syscall.Kill(r.PID, syscall.SIGKILL)
		killed++
		select {
		case err := <-long:
			if err == nil {
				t.Fatal("a 1 TB download completed")
			}
			t.Logf("stream ended after killing %d relay(s): %v", killed, err)
			goto ended
		case <-time.After(2 * time.Second):
		}
		if killed == 3 {
			break
		}
	}
	t.Fatal("the long stream did not end within 2 s of a relay on it being killed")
ended:
	// New streams get other circuits; with at most 3 of 6 relays gone a
	// path usually remains, so retry a few times while the consensus
	// catches up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := fetch(ctx, m, web, 1<<20, "after")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new stream after the kill: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
