package dirclient

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"veil/directory"
	"veil/directory/dirserve"
)

// CacheHost is the Host header of requests to a directory cache: the
// same for every client, so it tells the cache nothing (SPEC.md §5.6).
const CacheHost = "veil"

// route is where a seed's document is fetched from.
type route int

const (
	direct   route = iota // the seed's own directory URL
	viaCache              // Options.DirCache
)

// answer is how one seed's document came: what a fetch logs, so that an
// operator (and a test through real processes) sees what the directory
// costs.
type answer int

const (
	whole       answer = iota // 200 with the document
	asDiff                    // 200 with a diff (SPEC.md §5.7)
	notModified               // 304: the document held is the newest
)

// tally sums one fetch's answers and the body bytes read on the wire
// (compressed, as sent), over every request, fallbacks included.
type tally struct {
	mu                        sync.Mutex // guards the following fields
	whole, diffs, notModified int
	bytes                     int64
}

func (t *tally) add(a answer, n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bytes += n
	switch a {
	case whole:
		t.whole++
	case asDiff:
		t.diffs++
	case notModified:
		t.notModified++
	}
}

// attrs are the tally's fields for a log line.
func (t *tally) attrs() []any {
	t.mu.Lock()
	defer t.mu.Unlock()
	return []any{"whole", t.whole, "diffs", t.diffs, "not_modified", t.notModified, "bytes", t.bytes}
}

// wrap says that err came through the directory cache; a SeedError
// already names the seed and its URL.
func (r route) wrap(err error) error {
	if r == viaCache {
		return fmt.Errorf("through the directory cache: %w", err)
	}
	return err
}

// Fetch asks for every seed's newest document in parallel, checks each
// (size, signature, the seed's pinned key, validity now, no rollback) and
// combines the documents held with the majority rule. While a usable view
// is held and Options.DirCache is set, the documents come through the
// directory cache, and only if that gives no majority view are the seeds
// it could not serve asked directly (SPEC.md §5.6). On success the view
// becomes current, the counted documents are cached, and Fetch returns
// it; seeds that failed are logged. If no majority results, the current
// view is kept and the error names each failing seed and its URL.
func (c *Client) Fetch(ctx context.Context) (*directory.View, error) {
	c.update.Lock()
	defer c.update.Unlock()

	pending := make([]bool, len(c.seeds))
	for i := range pending {
		pending[i] = true
	}
	var got tally
	if c.dirCache != nil && c.View() != nil {
		errs := c.fetchAll(ctx, viaCache, pending, &got)
		answered := 0
		for _, e := range errs {
			if e == nil {
				answered++
			}
		}
		// The held documents alone may still combine into a view; the
		// cache must also have answered for a majority, or a guard that
		// is no cache would leave the view to age until it expires.
		err := fmt.Errorf("the directory cache answered for %d of %d seeds", answered, len(c.seeds))
		if need := len(c.pinned)/2 + 1; answered >= need {
			var v *directory.View
			if v, err = c.combineErrs(errs, "dirclient: no usable consensus from the directory cache"); err == nil {
				c.log.Debug("dirclient: consensus fetched through the directory cache",
					append([]any{"valid_after", v.ValidAfter.UTC().Format(time.RFC3339)}, got.attrs()...)...)
				c.writeCache(v)
				return v, nil
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// Only the seeds the cache could not serve are asked: each one
		// asked sees this client's address.
		var why []error
		for i, e := range errs {
			pending[i] = e != nil
			if e != nil {
				why = append(why, c.seedErr(i, e))
			}
		}
		c.log.Info("dirclient: the directory cache gave no majority view; asking the seeds it could not serve",
			"err", err, "seeds", errors.Join(why...))
	}
	errs := c.fetchAll(ctx, direct, pending, &got)
	v, err := c.combineErrs(errs, "dirclient: no usable consensus")
	if err != nil {
		return nil, err
	}
	c.log.Debug("dirclient: consensus fetched",
		append([]any{"valid_after", v.ValidAfter.UTC().Format(time.RFC3339)}, got.attrs()...)...)
	c.writeCache(v)
	return v, nil
}

// fetchAll fetches, by route r, the documents of the seeds marked in
// which and offers each to accept. It returns each seed's error, nil for
// the seeds not asked and those whose document was taken.
//
// Every request names the documents held as bases for a diff (SPEC.md
// §5.7.3). When some are held, the first seed asked is asked alone, and
// the others then name its new document too: the seeds list the same
// descriptors, so the others come as flags and weights, and an hour's new
// descriptors are downloaded once, not once per seed.
func (c *Client) fetchAll(ctx context.Context, r route, which []bool, got *tally) []error {
	c.mu.Lock()
	held := slices.Clone(c.held)
	c.mu.Unlock()

	docs := make([]*directory.Consensus, len(c.seeds))
	errs := make([]error, len(c.seeds))
	first := -1
	if slices.ContainsFunc(held, func(d *directory.Consensus) bool { return d != nil }) {
		first = slices.Index(which, true)
	}
	var fresh *directory.Consensus // the first seed's new document
	if first >= 0 {
		docs[first], errs[first] = c.fetchSeed(ctx, first, r, bases(held, first, nil), got)
		if errs[first] == nil && docs[first] != held[first] {
			fresh = docs[first]
		}
	}
	var wg sync.WaitGroup
	for i := range c.seeds {
		if which[i] && i != first {
			wg.Go(func() { docs[i], errs[i] = c.fetchSeed(ctx, i, r, bases(held, i, fresh), got) })
		}
	}
	wg.Wait()

	now := c.now()
	c.mu.Lock()
	for i, doc := range docs {
		if !which[i] || errs[i] != nil {
			continue
		}
		if r == viaCache && held[i] != nil && doc.ValidAfter.Unix() < held[i].ValidAfter.Unix() {
			// A cache refreshes from the seeds a little after clients
			// may have: one behind the document held is lagging, not
			// lying. The held document stays and counts; the older one
			// is never taken.
			c.log.Debug("dirclient: the directory cache is behind; keeping the document held", "seed", c.seeds[i].Name)
			docs[i] = held[i]
		}
		errs[i] = c.accept(i, docs[i], now)
	}
	c.mu.Unlock()
	for i, doc := range docs {
		if which[i] && errs[i] == nil {
			c.accepted(doc)
		}
	}
	return errs
}

// bases returns the documents a request for seed i names as bases for a
// diff: the one held from seed i first, then fresh (another seed's new
// document, nil for none), then those held from the other seeds; nil
// entries left out, at most dirserve.MaxDiffFrom.
func bases(held []*directory.Consensus, i int, fresh *directory.Consensus) []*directory.Consensus {
	out := []*directory.Consensus{held[i], fresh}
	for j, d := range held {
		if j != i {
			out = append(out, d)
		}
	}
	out = slices.DeleteFunc(out, func(d *directory.Consensus) bool { return d == nil })
	return out[:min(len(out), dirserve.MaxDiffFrom)]
}

// combineErrs applies the majority rule (combine) to the held documents,
// with errs (one per seed, nil for none) as the reasons seeds failed.
func (c *Client) combineErrs(errs []error, what string) (*directory.View, error) {
	failed := make([]bool, len(c.seeds))
	var seedErrs []error
	for i, err := range errs {
		if err != nil {
			failed[i] = true
			seedErrs = append(seedErrs, c.seedErr(i, err))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.combine(c.now(), what, seedErrs, failed)
}

// fetchSeed fetches seed i's newest document by route r. bases are the
// documents held that a diff may start from, the one held from seed i
// first, if any: the request names it in If-None-Match, and a 304
// returns it. A diff that does not make a document signed by the seed's
// pinned key is dropped and the whole document asked for (SPEC.md
// §5.7.2): a server that garbles diffs costs one request more.
func (c *Client) fetchSeed(ctx context.Context, i int, r route, bases []*directory.Consensus, got *tally) (*directory.Consensus, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var held *directory.Consensus
	if len(bases) > 0 && bases[0].SeedID() == c.seeds[i].ID {
		held = bases[0]
	}
	doc, err := c.fetchOnce(ctx, i, r, held, bases, got)
	var de *diffError
	if errors.As(err, &de) {
		c.log.Info("dirclient: a consensus diff did not check; fetching the whole document", "seed", c.seeds[i].Name, "err", r.wrap(err))
		doc, err = c.fetchOnce(ctx, i, r, held, nil, got)
	}
	return doc, err
}

// diffError is a diff that did not parse, apply or check.
type diffError struct{ err error }

func (e *diffError) Error() string { return "consensus diff: " + e.err.Error() }
func (e *diffError) Unwrap() error { return e.err }

// fetchOnce makes one request for seed i's newest document by route r,
// naming held in If-None-Match and bases in dirserve.DiffFromHeader.
func (c *Client) fetchOnce(ctx context.Context, i int, r route, held *directory.Consensus, bases []*directory.Consensus, got *tally) (*directory.Consensus, error) {
	s := c.seeds[i]
	target := strings.TrimSuffix(s.URL, "/") + dirserve.ConsensusPath
	if r == viaCache {
		target = "http://" + CacheHost + dirserve.SeedConsensusPath(s.ID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	// Set by hand, so the transport leaves the body compressed and
	// readBody caps what it unpacks.
	req.Header.Set("Accept-Encoding", "gzip")
	if held != nil {
		d := held.Digest()
		req.Header.Set("If-None-Match", `"`+hex.EncodeToString(d[:])+`"`)
	}
	if len(bases) > 0 {
		names := make([]string, len(bases))
		for j, b := range bases {
			d := b.Digest()
			names[j] = hex.EncodeToString(d[:])
		}
		req.Header.Set(dirserve.DiffFromHeader, strings.Join(names, ", "))
	}
	var resp *http.Response
	if r == viaCache {
		// One request a stream, which the cache closes after answering.
		req.Close = true
		resp, err = c.dirCache.RoundTrip(req)
	} else {
		resp, err = c.http.Do(req)
	}
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the SeedError already
		}
		return nil, r.wrap(err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		if held == nil {
			return nil, r.wrap(errors.New("304 Not Modified for a request that named no document"))
		}
		got.add(notModified, 0)
		return held, nil
	default:
		msg := "HTTP " + resp.Status
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			msg += ", retry after " + ra + " s"
		}
		return nil, r.wrap(errors.New(msg))
	}
	isDiff := resp.Header.Get("Content-Type") == dirserve.DiffContentType
	if isDiff && len(bases) == 0 {
		return nil, r.wrap(errors.New("a consensus diff for a request that named no base"))
	}
	wire := &countingBody{r: resp.Body}
	resp.Body = wire
	b, err := readBody(resp)
	kind := whole
	if isDiff {
		kind = asDiff
	}
	got.add(kind, wire.n)
	if err != nil {
		return nil, r.wrap(err)
	}
	var doc *directory.Consensus
	if isDiff {
		doc, err = applyDiff(b, bases)
	} else {
		doc, err = directory.ParseConsensus(b)
	}
	if err == nil && doc.SeedID() != s.ID {
		err = fmt.Errorf("%w: document signed by %s, not by the pinned %s", directory.ErrUnpinned, doc.SeedID(), s.ID)
	}
	if err != nil && isDiff {
		err = &diffError{err}
	}
	if err != nil {
		return nil, r.wrap(err)
	}
	return doc, nil
}

// applyDiff parses a diff and makes its target from the base it names,
// which must be one of bases, the documents the request named.
func applyDiff(b []byte, bases []*directory.Consensus) (*directory.Consensus, error) {
	d, err := directory.ParseDiff(b)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(bases, func(c *directory.Consensus) bool { return c.Digest() == d.Base })
	if i < 0 {
		return nil, fmt.Errorf("%w: a diff from %x, which the request did not name", directory.ErrMismatch, d.Base[:8])
	}
	return d.Apply(bases[i])
}

// countingBody counts the bytes read from a response body.
type countingBody struct {
	r io.ReadCloser
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingBody) Close() error { return c.r.Close() }

// readBody reads a response of at most directory.MaxConsensusLen bytes,
// unpacking gzip, and refuses more on the wire or once unpacked (G9).
func readBody(resp *http.Response) ([]byte, error) {
	const limit = directory.MaxConsensusLen
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: response of %d bytes, at most %d", directory.ErrTooLarge, resp.ContentLength, limit)
	}
	var r io.Reader = &cappedReader{r: resp.Body, left: limit, what: "response"}
	switch ce := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		r = &cappedReader{r: zr, left: limit, what: "unpacked response"}
	default:
		return nil, fmt.Errorf("unsupported Content-Encoding %q", ce)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	return b, nil
}

// cappedReader reads at most left bytes from r and fails with
// directory.ErrTooLarge if r has more.
type cappedReader struct {
	r    io.Reader
	left int64
	what string
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// Probe for one more byte: only EOF means the body fit.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("%w: %s over %d bytes", directory.ErrTooLarge, c.what, directory.MaxConsensusLen)
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
