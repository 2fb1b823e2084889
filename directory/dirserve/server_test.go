package dirserve

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"veil/directory"
	"veil/directory/internal/dirtest"
)

// clock is a settable time source for Options.Now.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func (c *clock) set(t time.Time)  { c.ns.Store(t.UnixNano()) }
func (c *clock) now() time.Time   { return time.Unix(0, c.ns.Load()).UTC() }

// get runs one request through h and returns the recorded response.
func get(h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func hexDigest(c *directory.Consensus) string {
	d := c.Digest()
	return hex.EncodeToString(d[:])
}

func newTestServer(t *testing.T) (*Server, *directory.Consensus) {
	t.Helper()
	s := New(Options{Now: func() time.Time { return t0 }, RateLimitPerMinute: -1})
	c := testConsensus(t, dirtest.Identity(t, "seed"), t0, 10)
	s.Publish(c.Bytes(), c)
	return s, c
}

func TestNoConsensusYet(t *testing.T) {
	s := New(Options{Now: func() time.Time { return t0 }})
	w := get(s.Handler(), "GET", ConsensusPath)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", w.Code)
	}
	if w.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}

func TestServeNewest(t *testing.T) {
	s, c := newTestServer(t)
	w := get(s.Handler(), "GET", ConsensusPath)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, want 200", w.Code)
	}
	if !bytes.Equal(w.Body.Bytes(), c.Bytes()) {
		t.Fatal("body is not the signed document")
	}
	want := map[string]string{
		"Content-Type":   "application/octet-stream",
		"ETag":           `"` + hexDigest(c) + `"`,
		"Cache-Control":  "public, max-age=60",
		"Vary":           "Accept-Encoding, X-Veil-Diff-From",
		"Content-Length": fmt.Sprint(len(c.Bytes())),
		"Last-Modified":  t0.Format(http.TimeFormat),
		"Expires":        t0.Add(time.Minute).Format(http.TimeFormat),
	}
	for k, v := range want {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if _, err := directory.ParseConsensus(w.Body.Bytes()); err != nil {
		t.Fatal(err)
	}
}

func TestMaxAgeNeverNegative(t *testing.T) {
	c := testConsensus(t, dirtest.Identity(t, "seed"), t0, 1)
	s := New(Options{Now: func() time.Time { return t0.Add(time.Hour) }})
	s.Publish(c.Bytes(), c)
	if got := get(s.Handler(), "GET", ConsensusPath).Header().Get("Cache-Control"); got != "public, max-age=0" {
		t.Fatalf("Cache-Control %q after fresh-until", got)
	}
}

func TestHead(t *testing.T) {
	s, c := newTestServer(t)
	w := get(s.Handler(), "HEAD", ConsensusPath)
	if w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Fatalf("HEAD: status %d, %d body bytes", w.Code, w.Body.Len())
	}
	if got := w.Header().Get("Content-Length"); got != fmt.Sprint(len(c.Bytes())) {
		t.Fatalf("HEAD Content-Length %q", got)
	}
}

func TestIfNoneMatch(t *testing.T) {
	s, c := newTestServer(t)
	tag := `"` + hexDigest(c) + `"`
	for _, inm := range []string{tag, "W/" + tag, `"other", ` + tag, "*"} {
		w := get(s.Handler(), "GET", ConsensusPath, "If-None-Match", inm)
		if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
			t.Errorf("If-None-Match %s: status %d, %d body bytes; want 304 and none", inm, w.Code, w.Body.Len())
		}
		if w.Header().Get("ETag") != tag {
			t.Errorf("304 ETag %q", w.Header().Get("ETag"))
		}
	}
	w := get(s.Handler(), "GET", ConsensusPath, "If-None-Match", `"`+strings.Repeat("0", 64)+`"`)
	if w.Code != http.StatusOK {
		t.Errorf("other ETag: status %d, want 200", w.Code)
	}
}

func TestGzip(t *testing.T) {
	s, c := newTestServer(t)
	for _, ae := range []string{"gzip", "deflate, gzip;q=0.5", "*", "br;q=1.0, *;q=0.1"} {
		w := get(s.Handler(), "GET", ConsensusPath, "Accept-Encoding", ae)
		if w.Header().Get("Content-Encoding") != "gzip" {
			t.Fatalf("Accept-Encoding %q: not compressed", ae)
		}
		if w.Header().Get("ETag") != `W/"`+hexDigest(c)+`"` {
			t.Errorf("gzip ETag %q", w.Header().Get("ETag"))
		}
		if w.Body.Len() >= len(c.Bytes()) || w.Header().Get("Content-Length") != fmt.Sprint(w.Body.Len()) {
			t.Errorf("gzip body %d bytes, Content-Length %q, raw %d", w.Body.Len(), w.Header().Get("Content-Length"), len(c.Bytes()))
		}
		zr, err := gzip.NewReader(w.Body)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(raw, c.Bytes()) {
			t.Fatalf("gunzipped body differs from the document (err %v)", err)
		}
	}
	for _, ae := range []string{"", "gzip;q=0", "identity", "*, gzip;q=0", "deflate"} {
		w := get(s.Handler(), "GET", ConsensusPath, "Accept-Encoding", ae)
		if w.Header().Get("Content-Encoding") != "" || !bytes.Equal(w.Body.Bytes(), c.Bytes()) {
			t.Errorf("Accept-Encoding %q: got a compressed body", ae)
		}
	}
	// The compressed form is made once, at Publish.
	s.mu.RLock()
	gz := s.docs[0].gz
	s.mu.RUnlock()
	w := get(s.Handler(), "GET", ConsensusPath, "Accept-Encoding", "gzip")
	if !bytes.Equal(w.Body.Bytes(), gz) {
		t.Error("gzip body is not the cached form")
	}
}

func TestByDigest(t *testing.T) {
	seed := dirtest.Identity(t, "seed")
	s := New(Options{Now: func() time.Time { return t0 }, RateLimitPerMinute: -1})
	var docs []*directory.Consensus
	for i := range KeepDocuments + 1 {
		c := testConsensus(t, seed, t0.Add(time.Duration(i)*time.Minute), 2)
		docs = append(docs, c)
		s.Publish(c.Bytes(), c)
	}
	newest := docs[len(docs)-1]
	if w := get(s.Handler(), "GET", ConsensusPath); !bytes.Equal(w.Body.Bytes(), newest.Bytes()) {
		t.Fatal("the newest document is not the last published")
	}
	for i, c := range docs {
		w := get(s.Handler(), "GET", ConsensusPath+"/"+hexDigest(c))
		if i == 0 {
			if w.Code != http.StatusNotFound {
				t.Errorf("document beyond the last %d: status %d, want 404", KeepDocuments, w.Code)
			}
			continue
		}
		if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), c.Bytes()) {
			t.Fatalf("document %d by digest: status %d", i, w.Code)
		}
		if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "immutable") || !strings.Contains(cc, "max-age=31536000") {
			t.Errorf("by digest: Cache-Control %q", cc)
		}
		if w.Header().Get("ETag") != `"`+hexDigest(c)+`"` {
			t.Errorf("by digest: ETag %q", w.Header().Get("ETag"))
		}
	}
	// Publishing a held document again moves it to the front without a duplicate.
	s.Publish(docs[1].Bytes(), docs[1])
	if w := get(s.Handler(), "GET", ConsensusPath); !bytes.Equal(w.Body.Bytes(), docs[1].Bytes()) {
		t.Fatal("republished document is not the newest")
	}
	if len(s.docs) != KeepDocuments {
		t.Fatalf("%d documents held, want %d", len(s.docs), KeepDocuments)
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	s, c := newTestServer(t)
	h := hexDigest(c)
	for _, p := range []string{"/", "/veil", "/veil/v1/consensusx", ConsensusPath + "/",
		ConsensusPath + "/" + strings.ToUpper(h), ConsensusPath + "/" + h[:63], ConsensusPath + "/" + h + "0",
		ConsensusPath + "/" + strings.Repeat("0", 64), ConsensusPath + "/" + h + "/x"} {
		if w := get(s.Handler(), "GET", p); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, w.Code)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS", "PATCH"} {
		for _, p := range []string{ConsensusPath, ConsensusPath + "/" + h} {
			w := get(s.Handler(), m, p)
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: status %d, Allow %q; want 405", m, p, w.Code, w.Header().Get("Allow"))
			}
		}
	}
}

func TestRateLimit(t *testing.T) {
	clk := newClock(t0)
	s := New(Options{Now: clk.now, RateLimitPerMinute: 10}) // burst 5, a token every 6 s
	c := testConsensus(t, dirtest.Identity(t, "seed"), t0, 1)
	s.Publish(c.Bytes(), c)
	ts := httptest.NewServer(s.Handler()) // 127.0.0.1: loopback is not exempt
	defer ts.Close()
	status := func() (int, string) {
		t.Helper()
		resp, err := ts.Client().Get(ts.URL + ConsensusPath)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	for i := range 5 {
		if code, _ := status(); code != http.StatusOK {
			t.Fatalf("request %d within the burst: status %d", i+1, code)
		}
	}
	code, ra := status()
	if code != http.StatusTooManyRequests || ra != "6" {
		t.Fatalf("request after the burst: status %d, Retry-After %q; want 429, 6", code, ra)
	}
	clk.set(t0.Add(6 * time.Second))
	if code, _ := status(); code != http.StatusOK {
		t.Fatalf("after a token came back: status %d", code)
	}
	if code, _ := status(); code != http.StatusTooManyRequests {
		t.Fatalf("second request after one token: status %d", code)
	}
	// Another address has its own bucket.
	r := httptest.NewRequest("GET", ConsensusPath, nil)
	r.RemoteAddr = "192.0.2.7:4000"
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("other client: status %d", w.Code)
	}
}

func TestServeAndShutdown(t *testing.T) {
	before := runtime.NumGoroutine()
	s := New(Options{})
	c := testConsensus(t, dirtest.Identity(t, "seed"), time.Now().Truncate(time.Second), 3)
	s.Publish(c.Bytes(), c)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()

	// Go's transport asks for gzip and unpacks it by itself.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + ln.Addr().String() + ConsensusPath)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !resp.Uncompressed || !bytes.Equal(body, c.Bytes()) {
		t.Fatalf("status %d, uncompressed %v, err %v, body equal %v", resp.StatusCode, resp.Uncompressed, err, bytes.Equal(body, c.Bytes()))
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(hangTimeout):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := client.Get("http://" + ln.Addr().String() + ConsensusPath); err == nil {
		t.Fatal("server still answers after shutdown")
	}
	client.CloseIdleConnections()
	deadline := time.Now().Add(hangTimeout)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines left running, %d before", n, before)
	}
}

func TestPublishWhileServing(t *testing.T) {
	seed := dirtest.Identity(t, "seed")
	s := New(Options{RateLimitPerMinute: -1})
	docs := []*directory.Consensus{testConsensus(t, seed, t0, 1), testConsensus(t, seed, t0.Add(time.Minute), 1)}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				if g == 0 {
					c := docs[i%2]
					s.Publish(c.Bytes(), c)
					continue
				}
				w := get(s.Handler(), "GET", ConsensusPath, "Accept-Encoding", "gzip")
				if w.Code != http.StatusOK && w.Code != http.StatusServiceUnavailable {
					t.Errorf("status %d", w.Code)
				}
			}
		})
	}
	wg.Wait()
}

func TestClientKey(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"},
		{"fe80::1%eth0", "fe80::"},
	} {
		if got := clientKey(netip.MustParseAddr(tc.a)); got != netip.MustParseAddr(tc.b) {
			t.Errorf("clientKey(%s) = %s, want %s", tc.a, got, tc.b)
		}
	}
}
