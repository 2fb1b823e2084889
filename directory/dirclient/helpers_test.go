package dirclient

import (
	"bytes"
	"crypto/sha3"
	"fmt"
	"io"
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
	"veil/onion"
	"veil/onion/keys"
)

// t0 is an arbitrary fixed "now" for every test.
var t0 = time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)

const running = directory.FlagRunning | directory.FlagValid

// testRand is a deterministic key source: SHAKE-128 of a label.
func testRand(label string) io.Reader {
	h := sha3.NewSHAKE128()
	h.Write([]byte(label))
	return h
}

func testIdentity(t testing.TB, label string) *keys.Identity {
	t.Helper()
	id, err := keys.GenerateIdentity(testRand("identity " + label))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// testRelay returns a signed descriptor published at t0 of a relay with
// OR port port; exit relays get the default exit policy.
func testRelay(t testing.TB, label string, port uint16, exit bool) *directory.Descriptor {
	t.Helper()
	id := testIdentity(t, label)
	created := t0.Add(-time.Hour)
	k, err := keys.GenerateOnionKey(id, testRand("onion "+label), created, created.Add(keys.DefaultRotateEvery+keys.DefaultGrace))
	if err != nil {
		t.Fatal(err)
	}
	d := &directory.Descriptor{
		OnionCert:       k.Cert(),
		Nickname:        "relay" + label,
		ORAddr:          netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
		GossipName:      id.ID().String(),
		GossipAddr:      netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port+1000),
		Bandwidth:       10 << 20,
		ProtocolVersion: onion.ProtocolVersion,
		Sequence:        1,
		Published:       t0,
		Expires:         t0.Add(directory.DefaultDescriptorLifetime),
	}
	if exit {
		d.Roles = directory.RoleExit
		d.Policy = exitpolicy.Default()
	}
	if _, err := d.Sign(id); err != nil {
		t.Fatal(err)
	}
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

// sign returns a document by seed valid from at for the default lifetime,
// fresh for a minute.
func sign(t testing.TB, seed *keys.Identity, at time.Time, entries []directory.Entry) *directory.Consensus {
	t.Helper()
	c := &directory.Consensus{
		ValidAfter: at,
		FreshUntil: at.Add(time.Minute),
		ValidUntil: at.Add(directory.DefaultConsensusLifetime),
		Relays:     slices.Clone(entries),
	}
	if _, err := c.Sign(seed); err != nil {
		t.Fatal(err)
	}
	return c
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
			key: testIdentity(t, fmt.Sprintf("seed%d", i+1)),
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
		s.publish(sign(t, s.key, at, entries))
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
