package dircache

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"veil/directory"
	"veil/directory/dirclient"
	"veil/directory/dirserve"
	"veil/directory/internal/dirtest"
	"veil/onion/keys"
)

var t0 = dirtest.T0

// testSeed is a seed's directory service on 127.0.0.1, or, while
// override is set, another handler.
type testSeed struct {
	key  *keys.Identity
	srv  *dirserve.Server
	ts   *httptest.Server
	seed dirclient.Seed

	mu       sync.Mutex // guards override
	override http.Handler
}

func (s *testSeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.override
	s.mu.Unlock()
	if h == nil {
		h = s.srv.Handler()
	}
	h.ServeHTTP(w, r)
}

func (s *testSeed) serveBytes(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.override = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(b) })
}

// newSeeds starts n seeds named s1..sn with nothing published.
func newSeeds(t testing.TB, n int) []*testSeed {
	t.Helper()
	var seeds []*testSeed
	for i := range n {
		s := &testSeed{
			key: dirtest.Identity(t, fmt.Sprintf("seed%d", i+1)),
			srv: dirserve.New(dirserve.Options{RateLimitPerMinute: -1}),
		}
		s.ts = httptest.NewServer(s)
		t.Cleanup(s.ts.Close)
		s.seed = dirclient.Seed{Name: fmt.Sprintf("s%d", i+1), URL: s.ts.URL, ID: s.key.ID()}
		seeds = append(seeds, s)
	}
	return seeds
}

// testRelays returns n relay entries, Running and Valid.
func testRelays(t testing.TB, n int) []directory.Entry {
	t.Helper()
	var out []directory.Entry
	for i := range n {
		label := fmt.Sprint("relay", i)
		id := dirtest.Identity(t, label)
		d := dirtest.Descriptor(t, id, label)
		d.ORAddr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(9001+i))
		d.GossipAddr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(10001+i))
		dirtest.Sign(t, id, d)
		out = append(out, directory.Entry{Flags: dirtest.Running, Descriptor: d})
	}
	return out
}

// publish has every seed sign entries valid from at and publish them.
func publish(t testing.TB, seeds []*testSeed, at time.Time, entries []directory.Entry) []*directory.Consensus {
	t.Helper()
	var docs []*directory.Consensus
	for _, s := range seeds {
		c := dirtest.SignedConsensus(t, s.key, at, entries)
		s.srv.Publish(c.Bytes(), c)
		docs = append(docs, c)
	}
	return docs
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// newCache returns a cache of seeds on clk, in memory only.
func newCache(t testing.TB, seeds []*testSeed, clk *clock) *Cache {
	t.Helper()
	var pins []dirclient.Seed
	for _, s := range seeds {
		pins = append(pins, s.seed)
	}
	c, err := New(Options{Seeds: pins, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.dc.Close)
	return c
}

// refresh has the cache fetch from its seeds once, as Run does at each
// fresh-until.
func (c *Cache) refresh(t testing.TB) {
	t.Helper()
	if _, err := c.dc.Fetch(context.Background()); err != nil {
		t.Logf("fetch: %v", err)
	}
}
