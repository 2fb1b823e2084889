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
	"strings"
	"sync"

	"veil/directory"
	"veil/directory/dirserve"
)

// Fetch asks every seed for its newest document in parallel, checks each
// (size, signature, the seed's pinned key, validity now, no rollback) and
// combines the documents held with the majority rule. On success the view
// becomes current, the counted documents are cached, and Fetch returns
// it; seeds that failed are logged. If no majority results, the current
// view is kept and the error names each failing seed and its URL.
func (c *Client) Fetch(ctx context.Context) (*directory.View, error) {
	c.update.Lock()
	defer c.update.Unlock()

	c.mu.Lock()
	held := append([]*directory.Consensus(nil), c.held...)
	c.mu.Unlock()

	docs := make([]*directory.Consensus, len(c.seeds))
	errs := make([]error, len(c.seeds))
	var wg sync.WaitGroup
	for i := range c.seeds {
		wg.Go(func() { docs[i], errs[i] = c.fetchSeed(ctx, i, held[i]) })
	}
	wg.Wait()

	now := c.now()
	c.mu.Lock()
	failed := make([]bool, len(c.seeds))
	var seedErrs []error
	for i, doc := range docs {
		err := errs[i]
		if err == nil {
			err = c.accept(i, doc, now)
		}
		if err != nil {
			failed[i] = true
			seedErrs = append(seedErrs, c.seedErr(i, err))
		}
	}
	v, err := c.combine(now, "dirclient: no usable consensus", seedErrs, failed)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	c.writeCache(v)
	return v, nil
}

// fetchSeed fetches seed i's newest document. held is the one already
// held from it: the request names it in If-None-Match, and a 304 returns
// it.
func (c *Client) fetchSeed(ctx context.Context, i int, held *directory.Consensus) (*directory.Consensus, error) {
	s := c.seeds[i]
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.URL, "/")+dirserve.ConsensusPath, nil)
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
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the SeedError already
		}
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		if held == nil {
			return nil, errors.New("304 Not Modified for a request that named no document")
		}
		return held, nil
	default:
		msg := "HTTP " + resp.Status
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			msg += ", retry after " + ra + " s"
		}
		return nil, errors.New(msg)
	}
	b, err := readBody(resp)
	if err != nil {
		return nil, err
	}
	doc, err := directory.ParseConsensus(b)
	if err != nil {
		return nil, err
	}
	if got := doc.SeedID(); got != s.ID {
		return nil, fmt.Errorf("%w: document signed by %s, not by the pinned %s", directory.ErrUnpinned, got, s.ID)
	}
	return doc, nil
}

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
