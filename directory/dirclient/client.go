// Package dirclient is the client's view of the directory: it fetches each
// pinned seed's signed consensus over HTTP, from a directory cache (the
// client's guard) while it holds a usable view and from the seeds
// themselves only to bootstrap (SPEC.md §8), keeps only what a strict
// majority of the pinned seeds back (directory.Combine, SPEC.md §6), caches
// the last good documents in the data directory so a client starts fast,
// and refreshes when fresh-until passes (DESIGN.md G8). A client that
// holds documents asks for diffs from them (SPEC.md §5.7) and checks what
// it makes byte for byte, as a document fetched whole.
//
// Nothing a single seed or cache says is trusted: a document counts only
// if it is signed by the key pinned for the seed it is for and is valid
// now, and neither a seed's documents nor the view ever move back to an
// older valid-after (no rollback), across restarts too.
// WriteStatus renders a view for `veil status`.
package dirclient

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"veil/conf"
	"veil/directory"
	"veil/onion/keys"
)

const (
	// DefaultMinRefresh is the least time between two fetches when
	// Options.MinRefresh is 0: conf's consensus_refresh default, so a seed
	// with a tiny fresh-until cannot turn its clients into a flood.
	DefaultMinRefresh = 30 * time.Second
	// DefaultRequestTimeout bounds one fetch from one seed, headers and
	// body: a few MiB on a slow link, while a seed that hangs does not
	// hold up the others for long (they are fetched in parallel).
	DefaultRequestTimeout = 30 * time.Second
	// MaxSeeds bounds the seeds a client pins: each costs a parallel fetch
	// holding up to directory.MaxConsensusLen (G9). Real deployments pin
	// a handful, as Tor's nine authorities.
	MaxSeeds = 16

	// Retry backoff after a failed fetch: from retryMin, doubling, to
	// retryMax. While a usable view is held, MinRefresh is the floor.
	retryMin = time.Second
	retryMax = 5 * time.Minute

	// userAgent is the same for every client, so it tells a seed nothing.
	userAgent = "veil"
)

// Sentinel errors callers branch on.
var (
	// ErrNoCache means the cache holds no document of any pinned seed
	// (first start, or no cache directory): fetch instead.
	ErrNoCache = errors.New("dirclient: no cached consensus")
	// ErrRollback means a seed served a document older than one it served
	// before, or a new view would be older than the current one (SPEC.md
	// §6 rule 6). The older one is refused.
	ErrRollback = errors.New("dirclient: older than the consensus held")
)

// Seed is one seed the client pins.
type Seed struct {
	Name string      // for messages
	URL  string      // directory URL, "http://127.0.0.1:7080"
	ID   keys.NodeID // the node ID its documents must be signed by
}

// SeedsFromConfig turns a client config's [[seed]] tables into Seeds.
func SeedsFromConfig(pins []conf.SeedPin) ([]Seed, error) {
	seeds := make([]Seed, 0, len(pins))
	for _, p := range pins {
		id, err := keys.ParseNodeID(p.Identity)
		if err != nil {
			return nil, fmt.Errorf("dirclient: seed %s: identity: %w", p.Name, err)
		}
		seeds = append(seeds, Seed{Name: p.Name, URL: p.DirURL, ID: id})
	}
	return seeds, nil
}

// Options configure a Client.
type Options struct {
	Seeds []Seed // the pinned seeds; at least one, each ID once
	// CacheDir is the data directory; documents are cached in its
	// consensus/ subdirectory. "" means no cache.
	CacheDir string
	// HTTPClient fetches documents. nil means one with timeouts, no
	// redirects and no proxy: Transport.Proxy is nil, so HTTP_PROXY and
	// friends in the environment are never used.
	HTTPClient *http.Client
	Logger     *slog.Logger     // nil: silent
	Now        func() time.Time // nil: time.Now
	// MinRefresh is the least time between fetches while a usable view is
	// held (conf consensus_refresh); 0 means DefaultMinRefresh.
	MinRefresh time.Duration
	// RequestTimeout bounds each seed's request; 0 means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// DirCache, when set, reaches a directory cache (SPEC.md §5.6): the
	// client's guard, over a BEGIN_DIR stream. While the client holds a
	// usable view, Fetch asks it for every seed's document first, with
	// GET SeedConsensusPath requests, and asks a seed directly only when
	// the cache gives no majority view; without a usable view (first
	// start, or everything expired) it asks the seeds directly, since a
	// guard is chosen from a view. Whatever the route, every document is
	// held to the same checks. nil: always the seeds directly.
	DirCache http.RoundTripper
	// Accepted, when set, is called with every document accepted from a
	// seed (fetched, or read from the disk cache), again for one already
	// held; not under any lock of the Client. A directory cache keeps
	// them as bases for diffs (SPEC.md §5.7.4).
	Accepted func(*directory.Consensus)
}

// Client fetches, checks and caches the consensus. Its methods may be
// called concurrently; Fetch and LoadCache run one at a time.
type Client struct {
	seeds      []Seed
	pinned     []keys.NodeID
	http       *http.Client
	ownHTTP    bool // http is New's, so Close closes its connections
	cacheDir   string
	log        *slog.Logger
	now        func() time.Time
	minRefresh time.Duration
	timeout    time.Duration
	dirCache   http.RoundTripper // nil: seeds only
	onAccept   func(*directory.Consensus)

	update sync.Mutex // held by Fetch and LoadCache for their whole run

	mu   sync.Mutex             // guards the following fields
	view *directory.View        // the current view, or nil
	held []*directory.Consensus // per seed (index of seeds), the newest document accepted
	// floor is, per seed, the latest valid-after of any document accepted
	// from it or found in the disk cache, expired or not (unix seconds):
	// nothing older is ever accepted, even once the held document has
	// expired or been dropped (SPEC.md §6 rule 6).
	floor   []int64
	written map[keys.NodeID][32]byte // digest of each seed's document in the cache
}

// New checks opts and returns a Client with no view: call LoadCache, Fetch
// or Run.
func New(opts Options) (*Client, error) {
	if len(opts.Seeds) == 0 {
		return nil, errors.New("dirclient: no seeds: pin at least one")
	}
	if len(opts.Seeds) > MaxSeeds {
		return nil, fmt.Errorf("dirclient: %d seeds pinned, at most %d", len(opts.Seeds), MaxSeeds)
	}
	c := &Client{
		seeds:      slices.Clone(opts.Seeds),
		http:       opts.HTTPClient,
		cacheDir:   opts.CacheDir,
		log:        opts.Logger,
		now:        opts.Now,
		minRefresh: opts.MinRefresh,
		timeout:    opts.RequestTimeout,
		dirCache:   opts.DirCache,
		onAccept:   opts.Accepted,
		held:       make([]*directory.Consensus, len(opts.Seeds)),
		floor:      make([]int64, len(opts.Seeds)),
		written:    make(map[keys.NodeID][32]byte),
	}
	seen := make(map[keys.NodeID]string)
	for _, s := range c.seeds {
		if s.Name == "" {
			return nil, fmt.Errorf("dirclient: seed %s has no name", s.ID)
		}
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("dirclient: seed %s: directory URL %q is not http://host:port", s.Name, s.URL)
		}
		if other, ok := seen[s.ID]; ok {
			// Pinned twice, it would count twice toward the majority.
			return nil, fmt.Errorf("dirclient: seeds %s and %s have the same identity %s", other, s.Name, s.ID)
		}
		seen[s.ID] = s.Name
		c.pinned = append(c.pinned, s.ID)
	}
	if c.http == nil {
		c.http, c.ownHTTP = defaultHTTPClient(), true
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.minRefresh <= 0 {
		c.minRefresh = DefaultMinRefresh
	}
	if c.timeout <= 0 {
		c.timeout = DefaultRequestTimeout
	}
	return c, nil
}

// defaultHTTPClient talks to seeds directly: never through a proxy from
// the environment (a client must not leak which seeds it asks to a proxy
// it did not choose), never following redirects (a seed's URL is pinned),
// with timeouts on every step.
func defaultHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:    10 * time.Second,
			ResponseHeaderTimeout:  15 * time.Second,
			IdleConnTimeout:        90 * time.Second,
			MaxIdleConnsPerHost:    1,
			MaxResponseHeaderBytes: 64 << 10,
			DisableCompression:     true, // fetchSeed asks for gzip and caps what it unpacks
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Close closes the idle connections of the HTTP client New made (not of
// Options.HTTPClient), whose goroutines would otherwise linger until the
// idle timeout. Call it after Run and every Fetch have returned.
func (c *Client) Close() {
	if c.ownHTTP {
		c.http.CloseIdleConnections()
	}
}

// Seeds returns the pinned seeds.
func (c *Client) Seeds() []Seed { return slices.Clone(c.seeds) }

// View returns the current view, or nil if there is none or it has
// expired: an expired view is never used for paths.
func (c *Client) View() *directory.View {
	c.mu.Lock()
	v := c.view
	c.mu.Unlock()
	if v == nil || c.now().Unix() > v.ValidUntil.Unix() {
		return nil
	}
	return v
}

// Held returns, by index of Seeds, the newest document accepted from each
// pinned seed that is still held (nil where none is): what a directory
// cache serves. A seed's entry only ever moves to a newer document, or to
// nil when the seed equivocates.
func (c *Client) Held() []*directory.Consensus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.held)
}

// SeedError is a failure of one seed: it names the seed and its URL.
type SeedError struct {
	Seed string // the seed's name
	URL  string // its directory URL
	Err  error
}

func (e *SeedError) Error() string {
	return fmt.Sprintf("dirclient: seed %s (%s): %v", e.Seed, e.URL, e.Err)
}

func (e *SeedError) Unwrap() error { return e.Err }

func (c *Client) seedErr(i int, err error) error {
	return &SeedError{Seed: c.seeds[i].Name, URL: c.seeds[i].URL, Err: err}
}

// combineError is a failure to form a view, with each seed's reason.
type combineError struct {
	msg  string
	errs []error // the majority error first, then each seed's
}

func (e *combineError) Error() string {
	parts := make([]string, 0, len(e.errs)+1)
	parts = append(parts, e.msg)
	for _, err := range e.errs {
		parts = append(parts, err.Error())
	}
	return strings.Join(parts, "; ")
}

func (e *combineError) Unwrap() []error { return e.errs }

// seedIndex returns the index of the seed with identity key pub, or -1.
func (c *Client) seedIndex(pub ed25519.PublicKey) int {
	id := keys.NodeIDFromIdentity(pub)
	return slices.Index(c.pinned, id)
}

// accept offers doc, from seed i, to the held documents under the rules of
// SPEC.md §6: not older than any document accepted from the seed or found
// in the cache (its floor), valid now, not a second document for the same
// valid-after. The caller holds c.mu.
func (c *Client) accept(i int, doc *directory.Consensus, now time.Time) error {
	if floor := c.floor[i]; doc.ValidAfter.Unix() < floor {
		return fmt.Errorf("%w: served a document valid after %s, but one valid after %s was held",
			ErrRollback, doc.ValidAfter.UTC().Format(time.RFC3339), time.Unix(floor, 0).UTC().Format(time.RFC3339))
	}
	if err := doc.CheckTime(now); err != nil {
		return err
	}
	c.raiseFloor(i, doc)
	cur := c.held[i]
	switch {
	case cur == nil || doc.ValidAfter.Unix() > cur.ValidAfter.Unix():
		c.held[i] = doc
	case doc.ValidAfter.Unix() < cur.ValidAfter.Unix():
		return fmt.Errorf("%w: served a document valid after %s, but one valid after %s is held",
			ErrRollback, doc.ValidAfter.UTC().Format(time.RFC3339), cur.ValidAfter.UTC().Format(time.RFC3339))
	case doc.Digest() != cur.Digest():
		// Neither counts (SPEC.md §6 rule 2) until the seed signs a newer one.
		c.held[i] = nil
		return fmt.Errorf("%w: two documents valid after %s", directory.ErrEquivocation, doc.ValidAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// accepted tells Options.Accepted of doc. The caller holds no lock.
func (c *Client) accepted(doc *directory.Consensus) {
	if c.onAccept != nil && doc != nil {
		c.onAccept(doc)
	}
}

// raiseFloor makes doc's valid-after the least one seed i may serve from
// now on, if it is later than the current floor. The caller holds c.mu.
func (c *Client) raiseFloor(i int, doc *directory.Consensus) {
	c.floor[i] = max(c.floor[i], doc.ValidAfter.Unix())
}

// combine applies the majority rule to the held documents valid at now
// and adopts the result unless it is older than the current view. failed
// marks seeds whose error is already in errs; without a majority the error
// is what, then the reasons. The caller holds c.mu.
func (c *Client) combine(now time.Time, what string, errs []error, failed []bool) (*directory.View, error) {
	var docs []*directory.Consensus
	for i, doc := range c.held {
		if doc == nil {
			continue
		}
		if err := doc.CheckTime(now); err != nil {
			if !failed[i] {
				errs = append(errs, c.seedErr(i, fmt.Errorf("document held: %w", err)))
			}
			continue
		}
		docs = append(docs, doc)
	}
	v, err := directory.Combine(docs, c.pinned, now)
	if err != nil {
		return nil, &combineError{msg: what, errs: append([]error{err}, errs...)}
	}
	for _, err := range errs {
		c.log.Warn("dirclient: seed not counted", "err", err)
	}
	if cur := c.view; cur != nil && v.ValidAfter.Unix() < cur.ValidAfter.Unix() {
		if now.Unix() <= cur.ValidUntil.Unix() {
			c.log.Warn("dirclient: keeping the current consensus; the new view is older",
				"current_valid_after", cur.ValidAfter, "new_valid_after", v.ValidAfter)
			return cur, nil
		}
		return nil, fmt.Errorf("%w: the majority's consensus is valid after %s, the last one after %s",
			ErrRollback, v.ValidAfter.UTC().Format(time.RFC3339), cur.ValidAfter.UTC().Format(time.RFC3339))
	}
	c.view = v
	return v, nil
}
