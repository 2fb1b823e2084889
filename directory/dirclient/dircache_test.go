package dirclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"veil/directory"
	"veil/directory/dirserve"
	"veil/directory/internal/dirtest"
	"veil/onion/keys"
)

// fakeCache is a directory cache reached as Options.DirCache: it serves,
// per seed, the document set for it at dirserve.SeedConsensusPath, and
// counts requests.
type fakeCache struct {
	mu       sync.Mutex // guards the following fields
	docs     map[keys.NodeID]*directory.Consensus
	down     bool // RoundTrip fails, as a guard that is gone
	requests int
	hosts    []string
}

func newFakeCache() *fakeCache {
	return &fakeCache{docs: map[keys.NodeID]*directory.Consensus{}}
}

func (f *fakeCache) set(c *directory.Consensus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.docs[c.SeedID()] = c
}

func (f *fakeCache) drop(id keys.NodeID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.docs, id)
}

func (f *fakeCache) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

func (f *fakeCache) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

func (f *fakeCache) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.requests++
	f.hosts = append(f.hosts, r.Host)
	down := f.down
	var doc *directory.Consensus
	for id, d := range f.docs {
		if r.URL.Path == dirserve.SeedConsensusPath(id) {
			doc = d
		}
	}
	f.mu.Unlock()
	if down {
		return nil, errors.New("guard unreachable")
	}
	w := httptest.NewRecorder()
	if doc == nil {
		http.NotFound(w, r)
	} else {
		dirserve.ServeDocument(w, r, dirserve.NewDocument(doc), t0)
	}
	return w.Result(), nil
}

// seedRequests counts the requests that reached each seed.
func seedRequests(seeds []*testSeed) []int {
	var n []int
	for _, s := range seeds {
		inm, _ := s.requests()
		n = append(n, len(inm))
	}
	return n
}

func sameCounts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFetchThroughDirCache: a client with no view bootstraps from the
// seeds; with a usable view it asks only the directory cache, keeps its
// document when the cache lags, and asks a seed directly only for the
// documents a cache that fails could not give it.
func TestFetchThroughDirCache(t *testing.T) {
	seeds := newSeeds(t, 3)
	relays := testRelays(t, 3)
	cache := newFakeCache()
	now := t0
	var clock sync.Mutex
	c, err := New(Options{Seeds: pins(seeds), DirCache: cache, Now: func() time.Time {
		clock.Lock()
		defer clock.Unlock()
		return now
	}})
	if err != nil {
		t.Fatal(err)
	}
	setNow := func(at time.Time) {
		clock.Lock()
		now = at
		clock.Unlock()
	}
	publish := func(at time.Time) []*directory.Consensus {
		var docs []*directory.Consensus
		for _, s := range seeds {
			d := dirtest.SignedConsensus(t, s.key, at, relays)
			s.publish(d)
			docs = append(docs, d)
		}
		return docs
	}

	// Bootstrap: no view, so no guard to ask; the seeds are asked.
	first := publish(t0)
	if _, err := c.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := seedRequests(seeds); !sameCounts(got, []int{1, 1, 1}) || cache.count() != 0 {
		t.Fatalf("bootstrap: seed requests %v, cache requests %d; want one to each seed, none to the cache", got, cache.count())
	}

	// With a view: only the cache, which has the newer documents.
	setNow(t0.Add(2 * time.Minute))
	for _, d := range publish(t0.Add(time.Minute)) {
		cache.set(d)
	}
	v, err := c.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !v.ValidAfter.Equal(t0.Add(time.Minute)) || cache.count() != 3 {
		t.Fatalf("through the cache: view valid after %v, %d cache requests", v.ValidAfter, cache.count())
	}
	if got := seedRequests(seeds); !sameCounts(got, []int{1, 1, 1}) {
		t.Fatalf("a seed was asked while the cache answered: %v", got)
	}
	for _, h := range cache.hosts {
		if h != CacheHost {
			t.Fatalf("Host %q sent to the cache, want %q", h, CacheHost)
		}
	}

	// The cache lags behind what the client holds: the held documents
	// stay, nothing older is taken, and no seed is asked.
	for _, d := range first {
		cache.set(d)
	}
	v, err = c.Fetch(context.Background())
	if err != nil || !v.ValidAfter.Equal(t0.Add(time.Minute)) {
		t.Fatalf("lagging cache: %v, %v", v, err)
	}
	if got := seedRequests(seeds); !sameCounts(got, []int{1, 1, 1}) {
		t.Fatalf("a seed was asked for a lagging cache: %v", got)
	}

	// The cache lost two seeds' documents: it no longer answers for a
	// majority, so those two seeds, and only they, are asked directly.
	setNow(t0.Add(3 * time.Minute))
	later := publish(t0.Add(2 * time.Minute))
	cache.set(later[0])
	cache.drop(seeds[1].key.ID())
	cache.drop(seeds[2].key.ID())
	v, err = c.Fetch(context.Background())
	if err != nil || !v.ValidAfter.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("cache with one seed's document: %v, %v", v, err)
	}
	if got := seedRequests(seeds); !sameCounts(got, []int{1, 2, 2}) {
		t.Fatalf("seed requests %v, want only s2 and s3 asked again", got)
	}

	// The guard is gone: every seed is asked.
	cache.setDown(true)
	if _, err := c.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := seedRequests(seeds); !sameCounts(got, []int{2, 3, 3}) {
		t.Fatalf("seed requests %v with the guard down, want every seed asked", got)
	}
}

// TestCachedDocumentRefusesRollback: documents loaded from the disk cache
// set the floor too. A process started later (a one-shot share or fetch)
// that loads the cache refuses a document older than the cached one,
// whether the cached one is still valid or has expired.
func TestCachedDocumentRefusesRollback(t *testing.T) {
	seeds := newSeeds(t, 1)
	s := seeds[0]
	relays := testRelays(t, 2)
	dir := t.TempDir()
	cur := dirtest.SignedConsensus(t, s.key, t0.Add(time.Hour), relays)
	s.publish(cur)
	warm, _ := newClient(t, pins(seeds), dir, t0.Add(time.Hour))
	if _, err := warm.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}

	// An older document, still valid at every time below: lifetime 6 h.
	old := &directory.Consensus{ValidAfter: t0, FreshUntil: t0.Add(time.Minute), ValidUntil: t0.Add(directory.MaxConsensusLifetime), Relays: relays}
	if _, err := old.Sign(s.key); err != nil {
		t.Fatal(err)
	}
	s.serve(serveBytes(old.Bytes()))

	for _, tc := range []struct {
		name string
		now  time.Time
	}{
		{"cached document valid", t0.Add(time.Hour + time.Minute)},
		{"cached document expired", t0.Add(time.Hour + directory.DefaultConsensusLifetime + time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, logs := newClient(t, pins(seeds), dir, tc.now)
			_, cacheErr := c.LoadCache()
			expired := tc.now.After(cur.ValidUntil)
			if expired != (cacheErr != nil) {
				t.Fatalf("LoadCache: %v", cacheErr)
			}
			v, err := c.Fetch(context.Background())
			if expired {
				// Nothing is held, and the older document is refused
				// all the same: no view at all.
				if !errors.Is(err, ErrRollback) || !strings.Contains(err.Error(), "s1") || c.View() != nil {
					t.Fatalf("a document older than the expired cached one: view %v, error %v; want ErrRollback naming s1", v, err)
				}
				return
			}
			// The cached document still counts; the older one is refused
			// and logged.
			if err != nil || !v.ValidAfter.Equal(cur.ValidAfter) {
				t.Fatalf("view %v, error %v; want the cached view kept", v, err)
			}
			if !strings.Contains(logs.String(), ErrRollback.Error()) {
				t.Fatalf("the refused rollback was not logged:\n%s", logs)
			}
		})
	}
}
