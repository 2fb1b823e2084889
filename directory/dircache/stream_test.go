package dircache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"veil/directory"
	"veil/directory/dirserve"
)

// hangTimeout bounds every wait: it detects a hang, never measures speed.
const hangTimeout = time.Minute

// served is a cache with one seed's document mirrored.
func served(t testing.TB) (*Cache, *directory.Consensus, string) {
	t.Helper()
	seeds := newSeeds(t, 1)
	docs := publish(t, seeds, t0, testRelays(t, 2))
	c := newCache(t, seeds, &clock{now: t0})
	c.refresh(t)
	return c, docs[0], dirserve.SeedConsensusPath(seeds[0].key.ID())
}

// serveStream runs ServeStream on one end of a pipe and returns the other
// and the channel ServeStream's result arrives on.
func serveStream(t *testing.T, c *Cache) (net.Conn, <-chan error) {
	t.Helper()
	client, server := net.Pipe()
	done := make(chan error, 1)
	go func() {
		err := c.ServeStream(context.Background(), server, func() { server.Close() })
		server.Close()
		done <- err
	}()
	t.Cleanup(func() { client.Close() })
	return client, done
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(hangTimeout):
		t.Fatal("ServeStream did not return")
		return nil
	}
}

// TestServeStream: pipelined requests answered in order on one stream,
// as a client reads them with net/http, until Connection: close.
func TestServeStream(t *testing.T) {
	c, doc, path := served(t)
	conn, done := serveStream(t, c)
	d := doc.Digest()
	tag := fmt.Sprintf(`"%x"`, d)
	reqs := "GET " + path + " HTTP/1.1\r\nHost: veil\r\n\r\n" +
		"GET " + path + " HTTP/1.1\r\nHost: veil\r\nIf-None-Match: " + tag + "\r\n\r\n" +
		"HEAD " + path + " HTTP/1.1\r\nHost: veil\r\n\r\n" +
		"GET /nope HTTP/1.1\r\nHost: veil\r\n\r\n" +
		"GET " + path + " HTTP/1.1\r\nHost: veil\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
	go conn.Write([]byte(reqs))
	br := bufio.NewReader(conn)
	for i, want := range []struct {
		method string
		code   int
	}{{"GET", 200}, {"GET", 304}, {"HEAD", 200}, {"GET", 404}, {"GET", 200}} {
		resp, err := http.ReadResponse(br, &http.Request{Method: want.method})
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != want.code {
			t.Fatalf("response %d: %d (%v), want %d", i, resp.StatusCode, err, want.code)
		}
		if i == 0 && !bytes.Equal(body, doc.Bytes()) {
			t.Fatal("the document differs")
		}
		if i == 4 && (resp.Header.Get("Content-Encoding") != "gzip" || !resp.Close) {
			t.Fatalf("last response: %v", resp.Header)
		}
	}
	if err := wait(t, done); err != nil {
		t.Fatalf("after Connection: close: %v", err)
	}
	if n, err := br.ReadByte(); err == nil {
		t.Fatalf("byte %d after the last response", n)
	}
}

// TestServeStreamRefuses: a request that does not parse, one with a body
// and one with headers over MaxRequestBytes each get 400 and end the
// stream; so does the request after MaxRequestsPerStream.
func TestServeStreamRefuses(t *testing.T) {
	c, _, path := served(t)
	for name, req := range map[string]string{
		"garbage":   "HELLO\r\n\r\n",
		"body":      "GET " + path + " HTTP/1.1\r\nHost: veil\r\nContent-Length: 3\r\n\r\nabc",
		"chunked":   "GET " + path + " HTTP/1.1\r\nHost: veil\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"too large": "GET " + path + " HTTP/1.1\r\nHost: veil\r\nX: " + strings.Repeat("a", MaxRequestBytes) + "\r\n\r\n",
		"HTTP/2":    "GET " + path + " HTTP/2.0\r\nHost: veil\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			conn, done := serveStream(t, c)
			go conn.Write([]byte(req))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil || resp.StatusCode != http.StatusBadRequest || !resp.Close {
				t.Fatalf("%v, %v; want 400 and Connection: close", resp, err)
			}
			if err := wait(t, done); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("request cap", func(t *testing.T) {
		conn, done := serveStream(t, c)
		go conn.Write([]byte(strings.Repeat("HEAD "+path+" HTTP/1.1\r\nHost: veil\r\n\r\n", MaxRequestsPerStream+1)))
		br := bufio.NewReader(conn)
		for i := range MaxRequestsPerStream {
			resp, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("request %d: %v %v", i, resp, err)
			}
			if resp.Close != (i == MaxRequestsPerStream-1) {
				t.Fatalf("request %d: Connection: close %v", i, resp.Close)
			}
		}
		if err := wait(t, done); err != nil {
			t.Fatal(err)
		}
	})
}

// TestServeStreamTimeouts: a client that sends nothing, or stops reading
// a response, is cut off and ServeStream returns.
func TestServeStreamTimeouts(t *testing.T) {
	c, _, path := served(t)
	c.idleTimeout, c.writeTimeout = 50*time.Millisecond, 50*time.Millisecond
	_, done := serveStream(t, c)
	if err := wait(t, done); err == nil || !strings.Contains(err.Error(), "idle") {
		t.Fatalf("idle stream: %v", err)
	}
	conn, done := serveStream(t, c)
	conn.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: veil\r\n\r\n")) // and never read
	if err := wait(t, done); err == nil {
		t.Fatal("a client that reads nothing held the stream")
	}

	// The relay's context ends.
	ctx, cancel := context.WithCancel(context.Background())
	client, server := net.Pipe()
	defer client.Close()
	errc := make(chan error, 1)
	c.idleTimeout = hangTimeout
	go func() { errc <- c.ServeStream(ctx, server, func() { server.Close() }) }()
	cancel()
	if err := wait(t, errc); !errors.Is(err, context.Canceled) {
		t.Fatalf("after the context ended: %v", err)
	}
}
