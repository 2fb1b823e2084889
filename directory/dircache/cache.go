// Package dircache is a relay's directory cache (SPEC.md §8): it mirrors
// the signed consensus documents of the seeds it pins, checked as a client
// checks them, and serves each seed's newest one to clients over BEGIN_DIR
// streams (onion/SPEC.md §7.9), so that a client with a usable view asks
// its guard instead of the seeds, and a seed no longer sees every client's
// address and when it shares.
//
// A cache serves what the seeds signed, byte for byte, and nothing it
// could forge: clients hold every document to the pinned keys, the
// validity times and the majority rule whatever route it took. What a
// cache must get right itself is never to serve a seed's document older
// than one it served before (no rollback), never an expired one, and to
// cost bounded memory and goroutines whatever its clients send (G9).
package dircache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"veil/directory"
	"veil/directory/dirclient"
	"veil/directory/dirserve"
)

const (
	// MaxStreams bounds the directory streams a relay serves at once:
	// each holds a goroutine, and a response in flight may hold a
	// document's bytes in the stream's window. A client needs a few
	// requests a refresh (one per pinned seed), each answered in
	// milliseconds, so 64 serves thousands of clients.
	MaxStreams = 64
	// MaxStreamsPerCircuit bounds one circuit's share of MaxStreams: a
	// client fetches at most one document per pinned seed at once.
	MaxStreamsPerCircuit = dirclient.MaxSeeds
)

// Options configure a Cache.
type Options struct {
	// Seeds are the seeds whose documents the cache mirrors: their
	// directory URLs and pinned node IDs, as a client pins them.
	Seeds []dirclient.Seed
	// DataDir keeps the documents across restarts, as a client's cache
	// (<DataDir>/consensus/<seed node ID>.bin). "" keeps them in memory.
	DataDir string
	// MinRefresh is the least time between two fetches from the seeds;
	// 0 means dirclient.DefaultMinRefresh.
	MinRefresh time.Duration
	// HTTPClient fetches from the seeds; nil means dirclient's default.
	HTTPClient *http.Client
	Logger     *slog.Logger     // nil: silent
	Now        func() time.Time // nil: time.Now
}

// Cache mirrors and serves the seeds' documents. Its methods may be
// called concurrently.
type Cache struct {
	dc    *dirclient.Client
	seeds []dirclient.Seed
	paths map[string]int // SeedConsensusPath of each seed → its index
	log   *slog.Logger
	now   func() time.Time
	// bases keeps every document accepted from any pinned seed, served
	// or not, for diffs to the documents served (SPEC.md §5.7.4): a
	// client may hold one it got from another cache or from the seed.
	bases *dirserve.Bases

	streams chan struct{} // one token per stream served, MaxStreams in all
	// idleTimeout and writeTimeout are IdleTimeout and WriteTimeout,
	// shorter in tests.
	idleTimeout, writeTimeout time.Duration

	mu sync.Mutex // guards the following fields
	// served is, per seed, the newest document served: it is replaced
	// only by a document with a later valid-after, so no client is ever
	// served one older than another was (SPEC.md §8).
	served     []*dirserve.Document
	perCircuit map[any]int // streams served on each circuit
}

// New returns a Cache with nothing mirrored yet: call Run.
func New(o Options) (*Cache, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	bases := dirserve.NewBases()
	dc, err := dirclient.New(dirclient.Options{Seeds: o.Seeds, CacheDir: o.DataDir, HTTPClient: o.HTTPClient,
		Logger: o.Logger, Now: o.Now, MinRefresh: o.MinRefresh,
		Accepted: func(doc *directory.Consensus) { bases.Add(doc, o.Now()) }})
	if err != nil {
		return nil, fmt.Errorf("dircache: %w", err)
	}
	c := &Cache{dc: dc, seeds: dc.Seeds(), paths: map[string]int{}, log: o.Logger, now: o.Now, bases: bases,
		streams: make(chan struct{}, MaxStreams), served: make([]*dirserve.Document, len(o.Seeds)),
		perCircuit: map[any]int{}, idleTimeout: IdleTimeout, writeTimeout: WriteTimeout}
	for i, s := range c.seeds {
		c.paths[dirserve.SeedConsensusPath(s.ID)] = i
	}
	return c, nil
}

// Run mirrors the seeds' documents until ctx ends: first those kept on
// disk, then each seed's newest, fetched again at every fresh-until (no
// sooner than MinRefresh) with If-None-Match, and with backoff while the
// seeds fail. It starts no goroutine that outlives it.
func (c *Cache) Run(ctx context.Context) {
	if _, err := c.dc.LoadCache(); err != nil && !errors.Is(err, dirclient.ErrNoCache) {
		c.log.Info("dircache: not serving the documents kept on disk", "err", err)
	}
	c.dc.Run(ctx)
	c.dc.Close()
}

// document returns the document to serve for seed i at now, or nil: the
// newest accepted from the seed, unless it is older than one served
// before, and never one that has expired, which a client must refuse.
func (c *Cache) document(i int, now time.Time) *dirserve.Document {
	held := c.dc.Held()[i]
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.served[i]
	if held != nil && (cur == nil || held.ValidAfter.Unix() > cur.ValidAfter().Unix()) {
		// Prepared (digest and gzip) once per document, under the
		// lock so that two requests do not both compress it.
		cur = dirserve.NewDocument(held)
		c.served[i] = cur
	}
	if cur == nil || now.Unix() > cur.ValidUntil().Unix() {
		return nil
	}
	return cur
}

// Acquire reserves one of the streams the cache serves at once for a
// stream on circuit (any comparable value naming it). It fails when
// MaxStreams are served, or MaxStreamsPerCircuit on that circuit; then
// the relay ends the stream with RESOURCELIMIT. release gives the
// reservation back; calling it more than once is harmless.
func (c *Cache) Acquire(circuit any) (release func(), ok bool) {
	c.mu.Lock()
	if c.perCircuit[circuit] >= MaxStreamsPerCircuit {
		c.mu.Unlock()
		return nil, false
	}
	select {
	case c.streams <- struct{}{}:
	default:
		c.mu.Unlock()
		return nil, false
	}
	c.perCircuit[circuit]++
	c.mu.Unlock()
	return sync.OnceFunc(func() {
		c.mu.Lock()
		if c.perCircuit[circuit]--; c.perCircuit[circuit] <= 0 {
			delete(c.perCircuit, circuit)
		}
		c.mu.Unlock()
		<-c.streams
	}), true
}

// Handler returns the HTTP handler of SPEC.md §8:
//
//	GET|HEAD /veil/v1/consensus/<seed node ID>
//	    200 with the seed's newest document and the headers a seed sends
//	    for GET /veil/v1/consensus (SPEC.md §5.5), gzipped on request;
//	    304 when If-None-Match names it; a diff instead when
//	    X-Veil-Diff-From names a document kept as a base and the diff is
//	    shorter (SPEC.md §5.7.3); 404 when the seed is not pinned
//	    here, no document of it is held, or the one held has expired.
//	other methods on that path: 405 with Allow: GET, HEAD
//	any other path: 404
func (c *Cache) Handler() http.Handler { return http.HandlerFunc(c.serveHTTP) }

func (c *Cache) serveHTTP(w http.ResponseWriter, r *http.Request) {
	i, ok := c.paths[r.URL.Path]
	if !ok {
		plain(w, http.StatusNotFound, "no such document")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		plain(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	now := c.now()
	d := c.document(i, now)
	if d == nil {
		plain(w, http.StatusNotFound, "no document of seed "+c.seeds[i].Name+" held")
		return
	}
	dirserve.ServeNewest(w, r, d, c.bases, now)
}

// plain writes a short text response with its length, so it needs no
// other framing on a stream.
func plain(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(msg)+1))
	w.WriteHeader(code)
	w.Write([]byte(msg + "\n"))
}

// Seeds returns the seeds the cache mirrors.
func (c *Cache) Seeds() []dirclient.Seed { return slices.Clone(c.seeds) }

// View returns the view the mirrored documents give by the majority rule,
// or nil: what the relay knows of the network, for its own heartbeat.
func (c *Cache) View() *directory.View { return c.dc.View() }
