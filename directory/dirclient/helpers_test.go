package dirclient

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"veil/conf/exitpolicy"
	"veil/directory"
	"veil/directory/dirserve"
	"veil/directory/internal/dirtest"
	"veil/onion/keys"
)

// t0 is an arbitrary fixed "now" for every test.
var t0 = dirtest.T0

const running = dirtest.Running

// testRelay returns a signed descriptor published at t0 of a relay with
// OR port port; exit relays get the default exit policy.
func testRelay(t testing.TB, label string, port uint16, exit bool) *directory.Descriptor {
	t.Helper()
	id := dirtest.Identity(t, label)
	d := dirtest.Descriptor(t, id, label)
	d.ORAddr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	d.GossipAddr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port+1000)
	if exit {
		d.Roles = directory.RoleExit
		d.Policy = exitpolicy.Default()
	}
	dirtest.Sign(t, id, d)
	return d
}

// testRelays returns n relays, the first an exit, with OR ports 9001...
func testRelays(t testing.TB, n int) []directory.Entry {
	t.Helper()
	var out []directory.Entry
	for i := range n {
		f := running
		if i == 0 {
			f |= directory.FlagExit
		}
		out = append(out, directory.Entry{Flags: f, Descriptor: testRelay(t, fmt.Sprint(i), uint16(9001+i), i == 0)})
	}
	return out
}

// testSeed is a seed's directory service on 127.0.0.1: a dirserve.Server,
// or, when set, another handler.
type testSeed struct {
	key  *keys.Identity
	srv  *dirserve.Server
	ts   *httptest.Server
	seed Seed

	mu       sync.Mutex   // guards the following fields
	override http.Handler // replaces srv when set
	inm      []string     // If-None-Match of each request
	ae       []string     // Accept-Encoding of each request
}

func (s *testSeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.override
	s.inm = append(s.inm, r.Header.Get("If-None-Match"))
	s.ae = append(s.ae, r.Header.Get("Accept-Encoding"))
	s.mu.Unlock()
	if h == nil {
		h = s.srv.Handler()
	}
	h.ServeHTTP(w, r)
}

func (s *testSeed) serve(h http.Handler) {
	s.mu.Lock()
	s.override = h
	s.mu.Unlock()
}

func (s *testSeed) publish(c *directory.Consensus) { s.srv.Publish(c.Bytes(), c) }

func (s *testSeed) requests() (inm, ae []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.inm), slices.Clone(s.ae)
}

// newSeeds starts n seeds named s1..sn, each with nothing published.
func newSeeds(t testing.TB, n int) []*testSeed {
	t.Helper()
	var seeds []*testSeed
	for i := range n {
		s := &testSeed{
			key: dirtest.Identity(t, fmt.Sprintf("seed%d", i+1)),
			srv: dirserve.New(dirserve.Options{RateLimitPerMinute: -1, Now: func() time.Time { return t0 }}),
		}
		s.ts = httptest.NewServer(s)
		t.Cleanup(s.ts.Close)
		s.seed = Seed{Name: fmt.Sprintf("s%d", i+1), URL: s.ts.URL, ID: s.key.ID()}
		seeds = append(seeds, s)
	}
	return seeds
}

// publishAll has every seed sign and publish entries, valid from at.
func publishAll(t testing.TB, seeds []*testSeed, at time.Time, entries []directory.Entry) {
	t.Helper()
	for _, s := range seeds {
		s.publish(dirtest.SignedConsensus(t, s.key, at, entries))
	}
}

func pins(seeds []*testSeed) []Seed {
	var out []Seed
	for _, s := range seeds {
		out = append(out, s.seed)
	}
	return out
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newClient returns a client of seeds whose clock says now and which
// logs into the returned buffer.
func newClient(t testing.TB, seeds []Seed, cacheDir string, now time.Time) (*Client, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	c, err := New(Options{
		Seeds:    seeds,
		CacheDir: cacheDir,
		Logger:   slog.New(slog.NewTextHandler(logs, nil)),
		Now:      func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, logs
}

// sameRelays fails unless v holds exactly want, digests and flags.
func sameRelays(t testing.TB, v *directory.View, want []directory.Entry) {
	t.Helper()
	if v == nil {
		t.Fatal("no view")
	}
	if len(v.Relays) != len(want) {
		t.Fatalf("view has %d relays, want %d", len(v.Relays), len(want))
	}
	for _, w := range want {
		e, ok := v.ByID(w.Descriptor.NodeID())
		if !ok {
			t.Fatalf("relay %s missing", w.Descriptor.Nickname)
		}
		if e.Descriptor.Digest() != w.Descriptor.Digest() || e.Flags != w.Flags {
			t.Fatalf("relay %s: flags %v, want %v (or another descriptor)", w.Descriptor.Nickname, e.Flags, w.Flags)
		}
	}
}
