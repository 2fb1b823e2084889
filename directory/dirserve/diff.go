package dirserve

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"veil/directory"
	"veil/onion/keys"
)

// Consensus diffs (SPEC.md §5.7): a client names the documents it holds in
// DiffFromHeader, and a server that keeps one of them as a base answers
// with a diff from it instead of the whole document, when that is shorter.

const (
	// DiffFromHeader names, as comma-separated lowercase hex digests, the
	// documents a client holds and would take a diff from.
	DiffFromHeader = "X-Veil-Diff-From"
	// DiffContentType marks a response whose body is a diff.
	DiffContentType = "application/x-veil-consensus-diff"
	// MaxDiffFrom bounds the digests of DiffFromHeader a server looks at:
	// a client holds one document per pinned seed, at most 16.
	MaxDiffFrom = 16
	// DiffBaseAge is how long a server keeps a document as a base: a
	// client refreshes every hour (consensus_refresh) and holds what it
	// got then; two hours cover one late refresh.
	DiffBaseAge = 2 * time.Hour
	// MaxDiffBases bounds the bases one server keeps: three seeds signing
	// every minute for DiffBaseAge make 360. A base costs a pointer an
	// entry (56 KB at 7,000 relays), so 384 cost at most 31 MB at
	// directory.MaxRelays (G9).
	MaxDiffBases = 384
	// diffsPerDocument is how many diffs to one document a server keeps
	// made, with their gzip form: clients holding the same base cost
	// one pass and one compression.
	diffsPerDocument = 8
)

// Bases keeps what directory.MakeDiff needs of past documents, for at most
// DiffBaseAge and MaxDiffBases. Its methods may be called concurrently.
type Bases struct {
	mu       sync.Mutex   // guards the following fields
	list     []storedBase // oldest first
	byDigest map[[32]byte]*directory.DiffBase
}

type storedBase struct {
	base       *directory.DiffBase
	validAfter time.Time
}

// NewBases returns an empty store.
func NewBases() *Bases { return &Bases{byDigest: map[[32]byte]*directory.DiffBase{}} }

// Add keeps c, which must have been signed or parsed, as a base, unless
// it is kept already or older than DiffBaseAge at now, and drops the
// bases past their age or beyond MaxDiffBases.
func (b *Bases) Add(c *directory.Consensus, now time.Time) {
	cutoff := now.Add(-DiffBaseAge)
	if c.ValidAfter.Before(cutoff) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.byDigest[c.Digest()]; ok {
		return
	}
	// Entries are shared with the newest base: documents a minute or an
	// hour apart, of one seed or of several, list mostly the same
	// descriptors, so a base costs about one pointer an entry.
	var intern func(directory.BaseEntry) *directory.BaseEntry
	if n := len(b.list); n > 0 {
		prev := map[keys.NodeID]*directory.BaseEntry{}
		for _, e := range b.list[n-1].base.Entries {
			prev[e.ID] = e
		}
		intern = func(e directory.BaseEntry) *directory.BaseEntry {
			if p := prev[e.ID]; p != nil && *p == e {
				return p
			}
			return &e
		}
	}
	base := directory.NewDiffBase(c, intern)
	b.list = append(b.list, storedBase{base: base, validAfter: c.ValidAfter})
	b.byDigest[base.Digest] = base
	drop := 0
	for drop < len(b.list) && (len(b.list)-drop > MaxDiffBases || b.list[drop].validAfter.Before(cutoff)) {
		delete(b.byDigest, b.list[drop].base.Digest)
		drop++
	}
	b.list = append(b.list[:0:0], b.list[drop:]...)
}

// Get returns the base of the document with SHA-256 digest, or nil.
func (b *Bases) Get(digest [32]byte) *directory.DiffBase {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byDigest[digest]
}

// Len returns how many bases are kept.
func (b *Bases) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.list)
}

// preparedDiff is one diff to a Document, encoded and gzipped once.
type preparedDiff struct {
	base [32]byte
	raw  []byte
	gz   []byte // nil when compression does not make it smaller
}

// diffFrom returns the diff from base to d, made once.
func (d *Document) diffFrom(base *directory.DiffBase) *preparedDiff {
	d.diffMu.Lock()
	defer d.diffMu.Unlock()
	for _, p := range d.diffs {
		if p.base == base.Digest {
			return p
		}
	}
	p := &preparedDiff{base: base.Digest}
	if diff := directory.MakeDiff(base, d.doc); diff.Len() < len(d.raw) {
		// MakeDiff from a signed or parsed document marshals.
		if b, err := diff.Marshal(); err == nil {
			p.raw, p.gz = b, compress(b)
		}
	}
	if len(d.diffs) == diffsPerDocument {
		d.diffs = d.diffs[1:]
	}
	d.diffs = append(d.diffs, p)
	return p
}

// pickDiff returns the shortest diff to d from a document r names in
// DiffFromHeader and bases keeps, if it is shorter than d; else nil.
func pickDiff(r *http.Request, d *Document, bases *Bases) *preparedDiff {
	if bases == nil || d.doc == nil {
		return nil
	}
	var best *preparedDiff
	for _, digest := range diffFrom(r.Header.Values(DiffFromHeader)) {
		if digest == d.digest {
			continue
		}
		base := bases.Get(digest)
		if base == nil {
			continue
		}
		if p := d.diffFrom(base); p.raw != nil && (best == nil || len(p.raw) < len(best.raw)) {
			best = p
		}
	}
	return best
}

// diffFrom returns the digests named in DiffFromHeader values, in order:
// at most MaxDiffFrom names are looked at, and any that is not 64
// lowercase hex digits is skipped.
func diffFrom(values []string) [][32]byte {
	var out [][32]byte
	seen := 0
	for _, v := range values {
		for name := range strings.SplitSeq(v, ",") {
			if seen++; seen > MaxDiffFrom {
				return out
			}
			name = strings.TrimSpace(name)
			if !isHexDigest(name) {
				continue
			}
			var digest [32]byte
			hex.Decode(digest[:], []byte(name))
			out = append(out, digest)
		}
	}
	return out
}

// writeDiff answers r with p, the diff to d: d's validators, the diff's
// content type, gzipped when r allows it.
func writeDiff(w http.ResponseWriter, r *http.Request, d *Document, p *preparedDiff) {
	h := w.Header()
	h.Set("Last-Modified", d.validAfter.UTC().Format(http.TimeFormat))
	body := p.raw
	if p.gz != nil && acceptsGzip(r.Header.Values("Accept-Encoding")) {
		body = p.gz
		h.Set("Content-Encoding", "gzip")
	}
	// The same document in other bytes: a weak validator.
	h.Set("ETag", `W/"`+d.hex+`"`)
	h.Set("Content-Type", DiffContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}
