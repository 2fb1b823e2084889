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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"veil/directory"
	"veil/directory/dirclient"
	"veil/directory/dirserve"
	"veil/directory/internal/dirtest"
)

// streamTransport is a client's route to its guard's directory cache, over
// real sockets: each request is one connection to a listener where the
// cache serves ServeStream, as a BEGIN_DIR stream on a one-hop circuit.
// It counts the bytes the client reads and can drop X-Veil-Diff-From, to
// fetch as a client did before diffs.
type streamTransport struct {
	addr    string
	noDiffs bool
	read    atomic.Int64
}

func (s *streamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		return nil, err
	}
	if s.noDiffs {
		req = req.Clone(req.Context())
		req.Header.Del(dirserve.DiffFromHeader)
	}
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(&countingReader{r: conn, n: &s.read}), req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	resp.Body = &closeBoth{resp.Body, conn}
	return resp, nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type closeBoth struct {
	io.ReadCloser
	conn net.Conn
}

func (c *closeBoth) Close() error {
	c.ReadCloser.Close()
	return c.conn.Close()
}

// serveStreams serves the cache's directory streams on 127.0.0.1 until
// the test ends, one goroutine a connection, and returns the address.
func serveStreams(t *testing.T, c *Cache) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				if err := c.ServeStream(ctx, conn, func() { conn.Close() }); err != nil && !errors.Is(err, context.Canceled) {
					t.Logf("stream: %v", err)
				}
			})
		}
	})
	return ln.Addr().String()
}

// countingSeed counts the bytes of the responses a seed writes.
type countingSeed struct {
	h http.Handler
	n atomic.Int64
}

func (c *countingSeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.h.ServeHTTP(&countingWriter{ResponseWriter: w, n: &c.n}, r)
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return c.ResponseWriter.Write(p)
}

// anHourLater is the network an hour after entries (SPEC.md §5.7.5): one
// relay in nine republished, two gone and two new; each seed then weighs
// every relay by its own measurement.
func anHourLater(t testing.TB, entries []directory.Entry, at time.Time) []directory.Entry {
	t.Helper()
	var out []directory.Entry
	for i, e := range entries[2:] {
		if i%9 == 0 {
			label := fmt.Sprint("relay", i+2)
			id := dirtest.Identity(t, label)
			d := *e.Descriptor
			d.Sequence++
			d.Published = at.Add(-time.Minute)
			d.Expires = d.Published.Add(directory.DefaultDescriptorLifetime)
			dirtest.Sign(t, id, &d)
			e.Descriptor = &d
		}
		out = append(out, e)
	}
	for i := range 2 {
		label := fmt.Sprint("newcomer", i)
		id := dirtest.Identity(t, label)
		d := dirtest.Descriptor(t, id, label)
		dirtest.Sign(t, id, d)
		out = append(out, directory.Entry{Flags: dirtest.Running, Descriptor: d})
	}
	return out
}

// publishWeighed has every seed sign entries with weights of its own.
func publishWeighed(t testing.TB, seeds []*testSeed, at time.Time, entries []directory.Entry) {
	t.Helper()
	for k, s := range seeds {
		es := append([]directory.Entry(nil), entries...)
		for i := range es {
			es[i].Weight = uint32(1000 + 37*i + 101*k)
		}
		c := dirtest.SignedConsensus(t, s.key, at, es)
		s.srv.Publish(c.Bytes(), c)
	}
}

// TestDiffThroughCacheOverSockets: real seeds (dirserve) and a real
// directory cache serving BEGIN_DIR-like streams over sockets. An hour
// after a client took the documents, it fetches them through the cache
// as diffs: far fewer bytes than the whole documents a client without
// diffs reads, and the documents it then holds are the seeds' signed
// ones, byte for byte, the same as that client's. The cache fetches
// from the seeds as diffs as well.
func TestDiffThroughCacheOverSockets(t *testing.T) {
	const relays = 90
	seeds := newSeeds(t, 3)
	counted := make([]*countingSeed, len(seeds))
	for i, s := range seeds {
		counted[i] = &countingSeed{h: s.srv.Handler()}
		s.mu.Lock()
		s.override = counted[i]
		s.mu.Unlock()
	}
	seedBytes := func() (n int64) {
		for _, c := range counted {
			n += c.n.Load()
		}
		return n
	}
	clk := &clock{now: t0}
	entries := testRelays(t, relays)
	publishWeighed(t, seeds, t0, entries)
	cache := newCache(t, seeds, clk)
	cache.refresh(t)
	cacheFull := seedBytes()
	addr := serveStreams(t, cache)

	var pins []dirclient.Seed
	for _, s := range seeds {
		pins = append(pins, s.seed)
	}
	client := func(tr *streamTransport) *dirclient.Client {
		dc, err := dirclient.New(dirclient.Options{Seeds: pins, Now: clk.Now, DirCache: tr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(dc.Close)
		// Bootstrap: no view yet, so from the seeds.
		if _, err := dc.Fetch(context.Background()); err != nil {
			t.Fatal(err)
		}
		return dc
	}
	withDiffs, without := &streamTransport{addr: addr}, &streamTransport{addr: addr, noDiffs: true}
	a, b := client(withDiffs), client(without)

	at := t0.Add(time.Hour)
	clk.set(at.Add(30 * time.Second))
	publishWeighed(t, seeds, at, anHourLater(t, entries, at))
	before := seedBytes()
	cache.refresh(t)
	cacheDiff := seedBytes() - before

	for _, dc := range []*dirclient.Client{a, b} {
		v, err := dc.Fetch(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !v.ValidAfter.Equal(at) {
			t.Fatalf("view valid after %s, want %s", v.ValidAfter, at)
		}
	}
	for i, s := range seeds {
		ha, hb := a.Held()[i], b.Held()[i]
		if ha == nil || hb == nil || !bytes.Equal(ha.Bytes(), hb.Bytes()) {
			t.Fatalf("seed %s: the document made from diffs is not the one fetched whole", s.seed.Name)
		}
		if !ha.ValidAfter.Equal(at) {
			t.Fatalf("seed %s: document valid after %s, want %s", s.seed.Name, ha.ValidAfter, at)
		}
	}
	gotDiff, gotFull := withDiffs.read.Load(), without.read.Load()
	t.Logf("%d relays, 3 seeds, an hour: the client read %d bytes through the cache as diffs, %d as whole documents; the cache read %d bytes from the seeds as diffs, %d whole at start",
		relays, gotDiff, gotFull, cacheDiff, cacheFull)
	if gotDiff*4 > gotFull {
		t.Errorf("diffs cost the client %d bytes, whole documents %d: want under a quarter", gotDiff, gotFull)
	}
	if cacheDiff*4 > cacheFull {
		t.Errorf("diffs cost the cache %d bytes from the seeds, whole documents %d: want under a quarter", cacheDiff, cacheFull)
	}
}
