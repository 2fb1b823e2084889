package dirclient

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"veil/conf/durable"
	"veil/directory"
	"veil/onion/keys"
)

const (
	cacheSubdir = "consensus" // under Options.CacheDir
	cacheExt    = ".bin"      // <seed node ID>.bin: the signed document as served
	dirPerm     = 0o700
	filePerm    = 0o600
)

// cacheFile is where seed id's document is cached.
func (c *Client) cacheFile(id keys.NodeID) string {
	return filepath.Join(c.cacheDir, cacheSubdir, id.String()+cacheExt)
}

// LoadCache reads the cached documents of the pinned seeds and, if a
// majority of them is valid now, adopts their view, so a client can build
// paths before its first fetch. It also remembers the documents, so the
// next Fetch asks only for newer ones and refuses older ones. An expired
// cache is refused with an error naming each seed's reason: a stale view
// is never used. ErrNoCache means no document was found.
func (c *Client) LoadCache() (*directory.View, error) {
	if c.cacheDir == "" {
		return nil, fmt.Errorf("%w: no cache directory", ErrNoCache)
	}
	c.update.Lock()
	defer c.update.Unlock()

	dir := filepath.Join(c.cacheDir, cacheSubdir)
	now := c.now()
	var taken []*directory.Consensus
	defer func() {
		for _, doc := range taken {
			c.accepted(doc)
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	found := false
	failed := make([]bool, len(c.seeds))
	var errs []error
	for i, s := range c.seeds {
		doc, err := readCached(c.cacheFile(s.ID))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		found = true
		if err == nil && doc.SeedID() != s.ID {
			err = fmt.Errorf("%w: cached document signed by %s, not by the pinned %s", directory.ErrUnpinned, doc.SeedID(), s.ID)
		}
		if err == nil && !errors.Is(doc.CheckTime(now), directory.ErrFromFuture) {
			// Even expired, the cached document is one this client
			// accepted once: nothing older may be accepted after it,
			// or a process started later (a one-shot share or fetch)
			// could be rolled back by a seed or cache it asks. One from
			// the future says the clock went back, and must not lock
			// the client out until it catches up.
			c.raiseFloor(i, doc)
		}
		if err == nil {
			err = c.accept(i, doc, now)
		}
		if err != nil {
			failed[i] = true
			errs = append(errs, c.seedErr(i, fmt.Errorf("cached document: %w", err)))
			continue
		}
		c.written[s.ID] = doc.Digest()
		taken = append(taken, doc)
	}
	if !found {
		return nil, fmt.Errorf("%w in %s", ErrNoCache, dir)
	}
	return c.combine(now, fmt.Sprintf("dirclient: cached consensus in %s is not usable", dir), errs, failed)
}

// readCached reads and parses one cached document.
func readCached(path string) (*directory.Consensus, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, directory.MaxConsensusLen+1))
	if err != nil {
		return nil, err
	}
	// ParseConsensus refuses more than MaxConsensusLen bytes.
	return directory.ParseConsensus(b)
}

// writeCache writes the document of every seed that counted in v and is
// not cached yet. A failure is logged: the view is good without a cache.
func (c *Client) writeCache(v *directory.View) {
	if c.cacheDir == "" {
		return
	}
	dir := filepath.Join(c.cacheDir, cacheSubdir)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		c.log.Warn("dirclient: cannot cache the consensus", "err", err)
		return
	}
	for _, pub := range v.Seeds {
		i := c.seedIndex(pub)
		if i < 0 {
			continue
		}
		c.mu.Lock()
		doc, digest := c.held[i], c.written[c.seeds[i].ID]
		c.mu.Unlock()
		if doc == nil || doc.Digest() == digest {
			continue
		}
		path := c.cacheFile(c.seeds[i].ID)
		if err := durable.WriteFile(path, doc.Bytes(), filePerm); err != nil {
			c.log.Warn("dirclient: cannot cache the consensus", "seed", c.seeds[i].Name, "file", path, "err", err)
			continue
		}
		c.mu.Lock()
		c.written[c.seeds[i].ID] = doc.Digest()
		c.mu.Unlock()
	}
}
