package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"veil/relay/testnet"
)

// fdCount returns how many file descriptors process pid has open.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("fds of %d: %v", pid, err)
	}
	return len(ents)
}

// scrapeClient opens a connection per scrape: the daemons close a
// connection idle for 30 s, and a kept one reused as it closed failed a
// scrape with EOF between two subtests.
var scrapeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// goroutines reads go_goroutines from a process's /metrics.
func goroutines(t *testing.T, metrics string) int {
	t.Helper()
	resp, err := scrapeClient.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatalf("metrics at %s: %v", metrics, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go_goroutines "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("go_goroutines %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatalf("no go_goroutines at %s", metrics)
	return 0
}

// streamFDs is the descriptors and goroutines of the proxy and of every
// relay, by name ("proxy fds", "relay1 goroutines", ...).
func streamFDs(t *testing.T, m testnet.Manifest) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, p := range append([]testnet.Proc{m.Proxy}, m.Relays...) {
		got[p.Name+" fds"] = fdCount(t, p.PID)
		got[p.Name+" goroutines"] = goroutines(t, p.Metrics)
	}
	return got
}

// waitFDs polls until every process is back within slack descriptors and
// goroutines of base, and fails naming those that are not. The deadline
// only catches a leak: a freed socket is gone within a linger.
func waitFDs(t *testing.T, m testnet.Manifest, base map[string]int, slack int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		now := streamFDs(t, m)
		var over []string
		for name, n := range now {
			if n > base[name]+slack {
				over = append(over, fmt.Sprintf("%s %d → %d", name, base[name], n))
			}
		}
		if len(over) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("descriptors or goroutines not released after %v: %s", within, strings.Join(over, ", "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// keepAliveFetch GETs / over HTTP/1.1 through the proxy, reads the whole
// answer, and closes the connection while the server would keep it open,
// as a browser does with an idle connection.
func keepAliveFetch(ctx context.Context, m testnet.Manifest, web netip.AddrPort) error {
	c, err := testnet.DialSOCKS(ctx, m.Socks, web, "", "")
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", web)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.Close || string(body) != testnet.Greeting {
		return fmt.Errorf("want a kept-alive greeting, got close=%v %q", resp.Close, body)
	}
	return nil
}

// TestStreamsToKeepAliveServerReleaseSockets: thousands of fetches through
// the proxy to a server that keeps its connections alive, each closed by
// the client, leave the proxy's and every relay's descriptors where they
// were; so does a client that leaves a server that ignores its half-close
// (after the linger); and a client that half-closes its request still
// gets the whole answer.
func TestStreamsToKeepAliveServerReleaseSockets(t *testing.T) {
	_, m := startTestnet(t, 4)
	web := webAddr(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// Warm up: links, circuits and the proxy's spares exist before the
	// baseline is taken.
	for range 20 {
		if err := keepAliveFetch(ctx, m, web); err != nil {
			t.Fatalf("warm-up fetch: %v", err)
		}
	}
	time.Sleep(time.Second)
	base := streamFDs(t, m)

	const fetches, workers = 2000, 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []error
	next := make(chan struct{})
	for range workers {
		wg.Go(func() {
			for range next {
				if err := keepAliveFetch(ctx, m, web); err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
			}
		})
	}
	for range fetches {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d fetches failed; first: %v", len(failed), fetches, failed[0])
	}
	waitFDs(t, m, base, 12, 2*time.Minute)
	t.Logf("%d keep-alive fetches: descriptors and goroutines back to %v (before: %v)", fetches, streamFDs(t, m), base)

	t.Run("half-closed request gets the whole answer", func(t *testing.T) {
		const answer = 1 << 20
		dest := serveOnce(t, func(c net.Conn, _ <-chan struct{}) {
			io.Copy(io.Discard, c) // the request, up to the client's FIN
			body := make([]byte, answer)
			for i := range body {
				body[i] = testnet.Pattern(int64(i))
			}
			c.Write(body)
		})
		c, err := testnet.DialSOCKS(ctx, m.Socks, dest, "", "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "request")
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if err := testnet.CheckPattern(c, answer); err != nil {
			t.Fatalf("answer after a half-close: %v", err)
		}
	})

	t.Run("server that ignores the half-close is let go after the linger", func(t *testing.T) {
		base := streamFDs(t, m)
		dest := serveOnce(t, func(c net.Conn, stop <-chan struct{}) {
			io.Copy(io.Discard, c)
			<-stop // keeps its side open, says nothing
		})
		for range 20 {
			c, err := testnet.DialSOCKS(ctx, m.Socks, dest, "", "")
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
		waitFDs(t, m, base, 12, 2*time.Minute)
	})
}

// serveOnce serves every connection to a loopback listener with handle,
// until the test ends; stop is closed then.
func serveOnce(t *testing.T, handle func(c net.Conn, stop <-chan struct{})) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	stop := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handle(c, stop)
			})
		}
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}
