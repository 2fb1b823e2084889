package dirserve

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"veil/directory"
	"veil/onion/keys"
)

// ConsensusPath is where the newest consensus is served; a document by
// digest is at ConsensusPath + "/" + its lowercase hex digest.
const ConsensusPath = "/veil/v1/consensus"

// SeedConsensusPath is where a directory cache serves the newest document
// of the seed with node ID id (SPEC.md §5.6): ConsensusPath, "/" and the
// node ID's one spelling, 52 characters of a-z and 2-7, which no digest
// (64 hex digits) can be mistaken for.
func SeedConsensusPath(id keys.NodeID) string {
	return ConsensusPath + "/" + id.String()
}

const (
	// KeepDocuments is how many of the newest published documents stay
	// servable by digest. Each may be up to directory.MaxConsensusLen
	// (twice, with its gzip form), so the number is small (G9); a client
	// that asks by digest wants the current document or one just before it.
	KeepDocuments = 4

	// noConsensusRetry is the Retry-After of a 503 before the first
	// Publish: a seed signs its first document soon after it starts.
	noConsensusRetry = 5 * time.Second
	// immutableMaxAge is the cache lifetime of a document fetched by
	// digest: the digest names those bytes forever.
	immutableMaxAge = 365 * 24 * time.Hour

	// Timeouts and limits of Serve's http.Server, so a slow or idle
	// client cannot hold a connection or memory for long (G9).
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second // requests have no body
	// writeTimeout lets a client on a slow link take a large document: a
	// 4 MiB consensus (10000 relays) at 100 KB/s.
	writeTimeout   = 2 * time.Minute
	idleTimeout    = 60 * time.Second
	maxHeaderBytes = 8 << 10 // a GET with a few headers needs far less
	// shutdownGrace is how long Serve waits for responses in flight when
	// its context ends before it closes their connections.
	shutdownGrace = 5 * time.Second
)

// Options configure a Server.
type Options struct {
	Logger *slog.Logger // nil: silent
	// RateLimitPerMinute is the requests a minute allowed to one client
	// address (IPv6 by /64), in bursts of half that. 0 means
	// DefaultRateLimitPerMinute; a negative value turns the limit off, for
	// a directory that only trusted clients reach. Loopback is not exempt.
	RateLimitPerMinute int
	Now                func() time.Time // nil: time.Now
}

// Server serves a seed's signed consensus documents. Publish may be called
// at any time, concurrently with requests.
type Server struct {
	log     *slog.Logger
	now     func() time.Time
	limiter *limiter // nil: no limit

	bases *Bases // every document published for DiffBaseAge (SPEC.md §5.7.4)

	mu   sync.RWMutex // guards docs
	docs []*Document  // newest last; at most KeepDocuments
}

// Document is one signed consensus with everything a response needs,
// computed once: its digest and its gzip form. A seed's Server makes one
// at Publish; a directory cache makes one per mirrored document and serves
// it with ServeDocument (SPEC.md §5.6), so both answer with the same
// headers.
type Document struct {
	raw        []byte
	gz         []byte // nil when compression does not make it smaller
	digest     [32]byte
	hex        string
	validAfter time.Time
	freshUntil time.Time
	validUntil time.Time
	// doc is the document, the target of diffs; nil when c was not
	// signed or parsed, and then no diff is made to it.
	doc *directory.Consensus

	diffMu sync.Mutex      // guards diffs
	diffs  []*preparedDiff // the last diffsPerDocument made, newest last
}

// NewDocument prepares c, which must have been parsed or signed (so that
// c.Bytes() is its signed encoding), for serving.
func NewDocument(c *directory.Consensus) *Document {
	return newDocument(c.Bytes(), c)
}

func newDocument(signed []byte, c *directory.Consensus) *Document {
	d := &Document{
		raw:        signed,
		digest:     sha256.Sum256(signed),
		validAfter: c.ValidAfter,
		freshUntil: c.FreshUntil,
		validUntil: c.ValidUntil,
	}
	d.hex = hex.EncodeToString(d.digest[:])
	d.gz = compress(signed)
	if c.Digest() == d.digest {
		d.doc = c
	}
	return d
}

// ValidAfter returns the document's valid-after.
func (d *Document) ValidAfter() time.Time { return d.validAfter }

// ValidUntil returns the document's valid-until.
func (d *Document) ValidUntil() time.Time { return d.validUntil }

// Digest returns the SHA-256 of the signed document.
func (d *Document) Digest() [32]byte { return d.digest }

// New returns a Server with nothing published: it answers 503 until the
// first Publish.
func New(opts Options) *Server {
	s := &Server{log: opts.Logger, now: opts.Now, bases: NewBases()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	switch rate := opts.RateLimitPerMinute; {
	case rate == 0:
		s.limiter = newLimiter(DefaultRateLimitPerMinute, MaxClients)
	case rate > 0:
		s.limiter = newLimiter(rate, MaxClients)
	}
	return s
}

// Publish makes c, whose signed encoding is signed, the document served at
// ConsensusPath. The previous KeepDocuments-1 stay servable by digest.
// signed must be c.Bytes() and must not be modified afterwards. Publishing
// a document again only makes it the newest.
func (s *Server) Publish(signed []byte, c *directory.Consensus) {
	if b := c.Bytes(); b != nil && !bytes.Equal(b, signed) {
		panic("dirserve: internal error: Publish with bytes that are not the document's encoding")
	}
	d := newDocument(signed, c)
	if d.doc != nil {
		s.bases.Add(c, s.now())
	}

	s.mu.Lock()
	docs := make([]*Document, 0, KeepDocuments)
	for _, old := range s.docs {
		if old.digest != d.digest {
			docs = append(docs, old)
		}
	}
	docs = append(docs, d)
	if n := len(docs) - KeepDocuments; n > 0 {
		docs = docs[n:]
	}
	s.docs = docs
	s.mu.Unlock()

	s.log.Debug("dirserve: publishing consensus", "digest", d.hex, "relays", len(c.Relays),
		"valid_after", c.ValidAfter.UTC().Format(time.RFC3339), "bytes", len(signed), "gzip_bytes", len(d.gz))
}

// compress returns b gzipped, or nil if that is no smaller.
func compress(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	// Writes to a bytes.Buffer do not fail.
	zw.Write(b)
	zw.Close()
	if buf.Len() >= len(b) {
		return nil
	}
	return buf.Bytes()
}

// newest returns the newest document, or nil.
func (s *Server) newest() *Document {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.docs) == 0 {
		return nil
	}
	return s.docs[len(s.docs)-1]
}

// byDigest returns the held document whose lowercase hex digest is h.
func (s *Server) byDigest(h string) *Document {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, d := range s.docs {
		if d.hex == h {
			return d
		}
	}
	return nil
}

// Handler returns the HTTP handler of the routes in the package comment.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	if s.limiter != nil {
		// RemoteAddr is the connection's address; one that does not parse
		// (not a TCP connection) shares the zero address's bucket.
		ap, _ := netip.ParseAddrPort(r.RemoteAddr)
		if ok, wait := s.limiter.allow(ap.Addr(), now); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(ceilSeconds(wait)))
			http.Error(w, "too many requests", http.StatusTooManyRequests)
			return
		}
	}

	path := r.URL.Path
	byDigest := false
	switch {
	case path == ConsensusPath:
	case strings.HasPrefix(path, ConsensusPath+"/") && isHexDigest(path[len(ConsensusPath)+1:]):
		byDigest = true
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}

	if byDigest {
		d := s.byDigest(path[len(ConsensusPath)+1:])
		if d == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d, immutable", int(immutableMaxAge/time.Second)))
		writeDocument(w, r, d)
		return
	}
	d := s.newest()
	if d == nil {
		w.Header().Set("Retry-After", strconv.Itoa(ceilSeconds(noConsensusRetry)))
		http.Error(w, "no consensus yet", http.StatusServiceUnavailable)
		return
	}
	ServeNewest(w, r, d, s.bases, now)
}

// ServeDocument answers a GET or HEAD r with d as the newest document of
// its seed (SPEC.md §5.5): a Cache-Control max-age until fresh-until and
// an Expires header, then writeDocument's. The caller has checked the
// method.
func ServeDocument(w http.ResponseWriter, r *http.Request, d *Document, now time.Time) {
	ServeNewest(w, r, d, nil, now)
}

// ServeNewest is ServeDocument, but when r names in DiffFromHeader a
// document that bases keeps, and the diff from it to d is shorter than d,
// it answers with the shortest such diff instead (SPEC.md §5.7.3). nil
// bases serves no diffs.
func ServeNewest(w http.ResponseWriter, r *http.Request, d *Document, bases *Bases, now time.Time) {
	h := w.Header()
	maxAge := max(0, int(d.freshUntil.Sub(now)/time.Second))
	h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", maxAge))
	h.Set("Expires", d.freshUntil.UTC().Format(http.TimeFormat))
	if bases == nil {
		writeDocument(w, r, d)
		return
	}
	h.Set("Vary", "Accept-Encoding, "+DiffFromHeader)
	if !noneMatch(r.Header.Values("If-None-Match"), d.hex) {
		if p := pickDiff(r, d, bases); p != nil {
			writeDiff(w, r, d, p)
			return
		}
	}
	writeDocument(w, r, d)
}

// writeDocument writes d's validators and body, gzipped when r allows it,
// or 304 when r's If-None-Match names d.
func writeDocument(w http.ResponseWriter, r *http.Request, d *Document) {
	h := w.Header()
	if h.Get("Vary") == "" {
		h.Set("Vary", "Accept-Encoding")
	}
	h.Set("Last-Modified", d.validAfter.UTC().Format(http.TimeFormat))

	body := d.raw
	etag := `"` + d.hex + `"`
	if d.gz != nil && acceptsGzip(r.Header.Values("Accept-Encoding")) {
		// Same document, other bytes: a weak validator (RFC 9110 §8.8.1).
		body, etag = d.gz, "W/"+etag
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("ETag", etag)
	if noneMatch(r.Header.Values("If-None-Match"), d.hex) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// Serve answers requests on ln, at most MaxConns connections at a time,
// until ctx ends, then stops taking new ones,
// lets those in flight finish for a few seconds, closes every connection
// and returns nil. It returns early with an error only if ln fails. Serve
// closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	// The goroutine below is the only one Serve starts; Serve waits for it
	// on every path, and http.Server's per-connection goroutines end with
	// Shutdown or Close.
	done := make(chan error, 1)
	go func() { done <- hs.Serve(newLimitListener(ln, MaxConns)) }()
	select {
	case err := <-done:
		return fmt.Errorf("dirserve: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("dirserve: serve on %s: %w", ln.Addr(), err)
	}
	return nil
}

// isHexDigest reports whether s is 64 lowercase hex digits: the one
// spelling of a digest, so each document has one URL.
func isHexDigest(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// acceptsGzip reports whether Accept-Encoding values allow gzip
// (RFC 9110 §12.5.3): gzip, x-gzip or * with a q-value above 0, an
// explicit gzip entry taking precedence over *.
func acceptsGzip(values []string) bool {
	gzipQ, starQ := -1.0, -1.0
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(part, ";")
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				k, val, ok := strings.Cut(p, "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil || f < 0 {
						f = 0
					}
					q = f
				}
			}
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "gzip", "x-gzip":
				gzipQ = q
			case "*":
				starQ = q
			}
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return starQ > 0
}

// noneMatch reports whether If-None-Match values name the document with
// hex digest h, by weak comparison (RFC 9110 §13.1.2), or are "*".
func noneMatch(values []string, h string) bool {
	want := `"` + h + `"`
	for _, v := range values {
		for tag := range strings.SplitSeq(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == want {
				return true
			}
		}
	}
	return false
}

// ceilSeconds rounds d up to whole seconds, at least 1, for Retry-After.
func ceilSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}
