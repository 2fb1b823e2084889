package dircache

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"veil/directory"
	"veil/directory/dirserve"
	"veil/directory/internal/dirtest"
)

func get(h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "http://veil"+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func etag(c *directory.Consensus) string {
	d := c.Digest()
	return `"` + hex.EncodeToString(d[:]) + `"`
}

// TestCacheServesEachSeed: each pinned seed's newest document, byte for
// byte, with the seed's own headers: gzip on request, 304 for the digest
// held, 404 for a seed not pinned and for other paths, 405 for other
// methods.
func TestCacheServesEachSeed(t *testing.T) {
	seeds := newSeeds(t, 2)
	docs := publish(t, seeds, t0, testRelays(t, 3))
	clk := &clock{now: t0}
	c := newCache(t, seeds, clk)
	h := c.Handler()
	if w := get(h, "GET", dirserve.SeedConsensusPath(seeds[0].key.ID())); w.Code != http.StatusNotFound {
		t.Fatalf("before any fetch: %d, want 404", w.Code)
	}
	c.refresh(t)
	for i, s := range seeds {
		path := dirserve.SeedConsensusPath(s.key.ID())
		w := get(h, "GET", path)
		if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), docs[i].Bytes()) {
			t.Fatalf("seed %d: %d, %d bytes; want the document", i, w.Code, w.Body.Len())
		}
		if w.Header().Get("ETag") != etag(docs[i]) || w.Header().Get("Cache-Control") == "" || w.Header().Get("Expires") == "" {
			t.Fatalf("seed %d: headers %v", i, w.Header())
		}
		w = get(h, "GET", path, "Accept-Encoding", "gzip")
		zr, err := gzip.NewReader(w.Body)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(zr); !bytes.Equal(b, docs[i].Bytes()) || w.Header().Get("ETag") != "W/"+etag(docs[i]) {
			t.Fatalf("seed %d gzipped: %d bytes unpacked, ETag %q", i, len(b), w.Header().Get("ETag"))
		}
		if w := get(h, "GET", path, "If-None-Match", etag(docs[i])); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
			t.Fatalf("seed %d with its digest: %d", i, w.Code)
		}
		if w := get(h, "HEAD", path); w.Code != http.StatusOK || w.Body.Len() != 0 {
			t.Fatalf("HEAD: %d, %d bytes", w.Code, w.Body.Len())
		}
		if w := get(h, "POST", path); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
			t.Fatalf("POST: %d %v", w.Code, w.Header())
		}
	}
	stranger := dirtest.Identity(t, "stranger").ID()
	d := docs[0].Digest()
	for _, path := range []string{dirserve.SeedConsensusPath(stranger), dirserve.ConsensusPath,
		dirserve.ConsensusPath + "/" + hex.EncodeToString(d[:]), "/", "/veil/v1/consensus/" + seeds[0].key.ID().String() + "/"} {
		if w := get(h, "GET", path); w.Code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, w.Code)
		}
	}
}

// TestCacheNeverRollsBack: once a seed's document was served, nothing
// older is, not even when the cache stops holding any (the seed
// equivocated); an expired document is never served.
func TestCacheNeverRollsBack(t *testing.T) {
	seeds := newSeeds(t, 1)
	s := seeds[0]
	relays := testRelays(t, 2)
	clk := &clock{now: t0.Add(time.Minute)}
	c := newCache(t, seeds, clk)
	h := c.Handler()
	path := dirserve.SeedConsensusPath(s.key.ID())
	served := func() *directory.Consensus {
		t.Helper()
		w := get(h, "GET", path)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
		doc, err := directory.ParseConsensus(w.Body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}

	publish(t, seeds, t0, relays)
	c.refresh(t)
	publish(t, seeds, t0.Add(time.Minute), relays)
	c.refresh(t)
	if got := served(); !got.ValidAfter.Equal(t0.Add(time.Minute)) {
		t.Fatalf("serving the document valid after %v, want the newer", got.ValidAfter)
	}

	// The seed signs a second document for the same valid-after: the
	// mirror holds neither, but the cache keeps serving the one it served.
	other := dirtest.SignedConsensus(t, s.key, t0.Add(time.Minute), testRelays(t, 3))
	s.serveBytes(other.Bytes())
	c.refresh(t)
	if c.dc.Held()[0] != nil {
		t.Fatal("an equivocating seed's document is still held")
	}
	if got := served(); !got.ValidAfter.Equal(t0.Add(time.Minute)) || len(got.Relays) != 2 {
		t.Fatalf("after the equivocation: served %v with %d relays", got.ValidAfter, len(got.Relays))
	}

	// An older document, even one still valid, is never taken.
	old := &directory.Consensus{ValidAfter: t0.Add(-time.Minute), FreshUntil: t0, ValidUntil: t0.Add(directory.MaxConsensusLifetime - time.Minute), Relays: relays}
	if _, err := old.Sign(s.key); err != nil {
		t.Fatal(err)
	}
	s.serveBytes(old.Bytes())
	c.refresh(t)
	if got := served(); !got.ValidAfter.Equal(t0.Add(time.Minute)) {
		t.Fatalf("rolled back to a document valid after %v", got.ValidAfter)
	}

	// Past its valid-until the document is no longer served.
	clk.set(t0.Add(time.Minute + directory.DefaultConsensusLifetime + time.Second))
	if w := get(h, "GET", path); w.Code != http.StatusNotFound {
		t.Fatalf("an expired document: %d, want 404", w.Code)
	}
}

// TestAcquireBoundsStreams: at most MaxStreams at once, and at most
// MaxStreamsPerCircuit on one circuit; a release makes room again.
func TestAcquireBoundsStreams(t *testing.T) {
	c := newCache(t, newSeeds(t, 1), &clock{now: t0})
	var releases []func()
	for range MaxStreamsPerCircuit {
		r, ok := c.Acquire("circuit A")
		if !ok {
			t.Fatal("refused below the per-circuit limit")
		}
		releases = append(releases, r)
	}
	if _, ok := c.Acquire("circuit A"); ok {
		t.Fatal("one circuit got more than MaxStreamsPerCircuit streams")
	}
	for i := 0; len(releases) < MaxStreams; i++ {
		r, ok := c.Acquire(i / MaxStreamsPerCircuit)
		if !ok {
			t.Fatalf("refused at %d streams, below MaxStreams", len(releases))
		}
		releases = append(releases, r)
	}
	if _, ok := c.Acquire("circuit B"); ok {
		t.Fatal("more than MaxStreams streams")
	}
	releases[0]()
	releases[0]() // twice is harmless
	if _, ok := c.Acquire("circuit A"); !ok {
		t.Fatal("no room after a release")
	}
	if _, ok := c.Acquire("circuit C"); ok {
		t.Fatal("a double release made room twice")
	}
}
