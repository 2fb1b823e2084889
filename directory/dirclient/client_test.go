package dirclient

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"veil/conf"
	"veil/directory"
	"veil/directory/internal/dirtest"
)

func TestThreeSeedsAgree(t *testing.T) {
	seeds := newSeeds(t, 3)
	relays := testRelays(t, 4)
	publishAll(t, seeds, t0, relays)
	c, _ := newClient(t, pins(seeds), "", t0)
	if c.View() != nil {
		t.Fatal("view before any fetch")
	}
	v, err := c.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sameRelays(t, v, relays)
	if len(v.Seeds) != 3 || !v.ValidAfter.Equal(t0) || !v.FreshUntil.Equal(t0.Add(time.Minute)) {
		t.Fatalf("view: %d seeds, valid-after %v, fresh-until %v", len(v.Seeds), v.ValidAfter, v.FreshUntil)
	}
	if c.View() != v {
		t.Fatal("View is not the fetched view")
	}
	// Seeds were asked for gzip, and dirserve gave it.
	for _, s := range seeds {
		if _, ae := s.requests(); len(ae) != 1 || ae[0] != "gzip" {
			t.Fatalf("seed %s: Accept-Encoding %q", s.seed.Name, ae)
		}
	}
}

func TestLyingSeed(t *testing.T) {
	relays := testRelays(t, 4)
	extra := testRelays(t, 6)[5]
	changed := slices.Clone(relays)
	changed[1].Flags |= directory.FlagGuard | directory.FlagStable
	changed[2].Flags &^= directory.FlagRunning
	for name, lie := range map[string][]directory.Entry{
		"adds a relay":  append(slices.Clone(relays), extra),
		"drops a relay": relays[1:],
		"changes flags": changed,
		"lists nothing": nil,
		"all of it":     append(slices.Clone(changed[1:]), extra),
	} {
		t.Run(name, func(t *testing.T) {
			seeds := newSeeds(t, 3)
			publishAll(t, seeds[:2], t0, relays)
			seeds[2].publish(dirtest.SignedConsensus(t, seeds[2].key, t0, lie))
			c, _ := newClient(t, pins(seeds), "", t0)
			v, err := c.Fetch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			sameRelays(t, v, relays)
		})
	}
}

func TestForeignSigner(t *testing.T) {
	seeds := newSeeds(t, 3)
	relays := testRelays(t, 2)
	mallory := dirtest.Identity(t, "mallory")
	seeds[0].publish(dirtest.SignedConsensus(t, seeds[0].key, t0, relays))
	seeds[1].publish(dirtest.SignedConsensus(t, mallory, t0, relays))
	seeds[2].publish(dirtest.SignedConsensus(t, seeds[0].key, t0, relays)) // another pinned seed's document

	c, logs := newClient(t, pins(seeds), "", t0)
	_, err := c.Fetch(context.Background())
	if err == nil {
		t.Fatal("majority formed from documents signed by the wrong keys")
	}
	if !errors.Is(err, directory.ErrUnpinned) || !errors.Is(err, directory.ErrNoMajority) {
		t.Fatalf("error does not wrap ErrUnpinned and ErrNoMajority: %v", err)
	}
	for _, s := range seeds[1:] {
		want := "dirclient: seed " + s.seed.Name + " (" + s.seed.URL + "): "
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
	var se *SeedError
	if !errors.As(err, &se) || se.Seed != "s2" {
		t.Errorf("no SeedError for s2 in %v", err)
	}

	// With two honest seeds the view forms and the liar is logged by name.
	seeds[2].publish(dirtest.SignedConsensus(t, seeds[2].key, t0, relays))
	v, err := c.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sameRelays(t, v, relays)
	if len(v.Seeds) != 2 {
		t.Fatalf("%d seeds counted, want 2", len(v.Seeds))
	}
	if !strings.Contains(logs.String(), "seed s2 ("+seeds[1].seed.URL+")") {
		t.Errorf("log does not name seed s2:\n%s", logs)
	}
}

func TestSeedsDown(t *testing.T) {
	seeds := newSeeds(t, 3)
	relays := testRelays(t, 3)
	publishAll(t, seeds, t0, relays)
	seeds[2].ts.Close()
	c, _ := newClient(t, pins(seeds), "", t0)
	v, err := c.Fetch(context.Background())
	if err != nil {
		t.Fatalf("two of three seeds up: %v", err)
	}
	sameRelays(t, v, relays)

	seeds[1].ts.Close()
	c2, _ := newClient(t, pins(seeds), "", t0)
	_, err = c2.Fetch(context.Background())
	if !errors.Is(err, directory.ErrNoMajority) {
		t.Fatalf("one of three seeds up: %v", err)
	}
	for _, s := range seeds[1:] {
		if !strings.Contains(err.Error(), "seed "+s.seed.Name+" ("+s.seed.URL+")") {
			t.Errorf("error does not name seed %s: %v", s.seed.Name, err)
		}
	}
	if c2.View() != nil {
		t.Fatal("view without a majority")
	}

	// A seed answering 503 (nothing signed yet) is a failure too.
	fresh := newSeeds(t, 1)
	c3, _ := newClient(t, pins(fresh), "", t0)
	if _, err := c3.Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503: %v", err)
	}
}

func TestExpiredDocumentRefused(t *testing.T) {
	seeds := newSeeds(t, 3)
	publishAll(t, seeds, t0, testRelays(t, 2))
	c, _ := newClient(t, pins(seeds), "", t0.Add(directory.DefaultConsensusLifetime+time.Second))
	_, err := c.Fetch(context.Background())
	if !errors.Is(err, directory.ErrExpired) || !errors.Is(err, directory.ErrNoMajority) {
		t.Fatalf("expired documents: %v", err)
	}
	// And documents from the future.
	c, _ = newClient(t, pins(seeds), "", t0.Add(-directory.ClockSkew-time.Minute))
	if _, err := c.Fetch(context.Background()); !errors.Is(err, directory.ErrFromFuture) {
		t.Fatalf("documents from the future: %v", err)
	}
}

func TestNoRollback(t *testing.T) {
	seeds := newSeeds(t, 3)
	old, cur := testRelays(t, 2), testRelays(t, 3)
	publishAll(t, seeds, t0.Add(time.Minute), cur)
	c, logs := newClient(t, pins(seeds), "", t0.Add(time.Minute))
	if _, err := c.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}

	// One seed goes back to an older document: refused, its newer one
	// still counts.
	seeds[0].serve(serveBytes(dirtest.SignedConsensus(t, seeds[0].key, t0, old).Bytes()))
	v, err := c.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sameRelays(t, v, cur)
	if len(v.Seeds) != 3 || !v.ValidAfter.Equal(t0.Add(time.Minute)) {
		t.Fatalf("view after one seed rolled back: %d seeds, valid-after %v", len(v.Seeds), v.ValidAfter)
	}
	if !strings.Contains(logs.String(), "seed s1") || !strings.Contains(logs.String(), ErrRollback.Error()) {
		t.Errorf("rollback of s1 not logged:\n%s", logs)
	}

	// All seeds go back: the view does not.
	for _, s := range seeds {
		s.serve(serveBytes(dirtest.SignedConsensus(t, s.key, t0, old).Bytes()))
	}
	v, err = c.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sameRelays(t, v, cur)
	if !c.View().ValidAfter.Equal(t0.Add(time.Minute)) {
		t.Fatal("view rolled back")
	}
}

func TestEquivocationRefused(t *testing.T) {
	seeds := newSeeds(t, 1)
	seeds[0].publish(dirtest.SignedConsensus(t, seeds[0].key, t0, testRelays(t, 2)))
	c, _ := newClient(t, pins(seeds), "", t0)
	if _, err := c.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	seeds[0].publish(dirtest.SignedConsensus(t, seeds[0].key, t0, testRelays(t, 3)))
	if _, err := c.Fetch(context.Background()); !errors.Is(err, directory.ErrEquivocation) {
		t.Fatalf("second document with the same valid-after: %v", err)
	}
}

func TestCache(t *testing.T) {
	seeds := newSeeds(t, 3)
	relays := testRelays(t, 3)
	publishAll(t, seeds, t0, relays)
	dir := filepath.Join(t.TempDir(), "data")
	c, _ := newClient(t, pins(seeds), dir, t0)
	if _, err := c.LoadCache(); !errors.Is(err, ErrNoCache) {
		t.Fatalf("LoadCache before any fetch: %v", err)
	}
	if _, err := c.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "consensus"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache directory: %v, mode %v", err, fi.Mode())
	}
	for _, s := range seeds {
		p := filepath.Join(dir, "consensus", s.seed.ID.String()+".bin")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "consensus"))
	if len(entries) != 3 {
		t.Errorf("%d files in the cache, want 3 (no temporary files)", len(entries))
	}

	// A new client starts from the cache, then asks only for newer documents.
	c2, _ := newClient(t, pins(seeds), dir, t0.Add(time.Hour))
	v, err := c2.LoadCache()
	if err != nil {
		t.Fatal(err)
	}
	sameRelays(t, v, relays)
	if c2.View() != v {
		t.Fatal("cached view not current")
	}
	if _, err := c2.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, s := range seeds {
		inm, _ := s.requests()
		if len(inm) != 2 || inm[0] != "" || !strings.HasPrefix(inm[1], `"`) || len(inm[1]) != 66 {
			t.Fatalf("seed %s: If-None-Match of each request %q", s.seed.Name, inm)
		}
	}

	// An expired cache is refused, clearly.
	c3, _ := newClient(t, pins(seeds), dir, t0.Add(directory.DefaultConsensusLifetime+time.Minute))
	_, err = c3.LoadCache()
	if !errors.Is(err, directory.ErrExpired) || !strings.Contains(err.Error(), "cached consensus in "+filepath.Join(dir, "consensus")) {
		t.Fatalf("expired cache: %v", err)
	}
	if c3.View() != nil {
		t.Fatal("expired cache gave a view")
	}

	// A corrupt cache file is refused by name; the other two still make a majority.
	p := filepath.Join(dir, "consensus", seeds[0].seed.ID.String()+".bin")
	if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	c4, logs := newClient(t, pins(seeds), dir, t0)
	if _, err := c4.LoadCache(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "seed s1") {
		t.Errorf("corrupt cache file of s1 not logged:\n%s", logs)
	}
}

// serveBytes answers every request with body and the given headers.
func serveBytes(body []byte, header ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Write(body)
	})
}

func gzipped(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestResponseLimits(t *testing.T) {
	seeds := newSeeds(t, 1)
	doc := dirtest.SignedConsensus(t, seeds[0].key, t0, testRelays(t, 2))
	big := make([]byte, directory.MaxConsensusLen+1)
	for name, tc := range map[string]struct {
		h    http.Handler
		want error
	}{
		"oversize by length": {http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Refused on the header alone: the body never comes.
			w.Header().Set("Content-Length", strconv.Itoa(directory.MaxConsensusLen+1))
			w.WriteHeader(http.StatusOK)
		}), directory.ErrTooLarge},
		"oversize chunked": {http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush() // no Content-Length
			w.Write(big)
		}), directory.ErrTooLarge},
		"gzip bomb":    {serveBytes(gzipped(t, big), "Content-Encoding", "gzip"), directory.ErrTooLarge},
		"bad gzip":     {serveBytes(doc.Bytes(), "Content-Encoding", "gzip"), nil},
		"brotli":       {serveBytes(doc.Bytes(), "Content-Encoding", "br"), nil},
		"garbage":      {serveBytes([]byte("hello")), directory.ErrMalformed},
		"forged":       {serveBytes(append(slices.Clone(doc.Bytes()[:len(doc.Bytes())-1]), 0)), directory.ErrBadSignature},
		"redirect":     {http.RedirectHandler("http://127.0.0.1:1/", http.StatusFound), nil},
		"server error": {http.NotFoundHandler(), nil},
	} {
		t.Run(name, func(t *testing.T) {
			seeds[0].serve(tc.h)
			c, _ := newClient(t, pins(seeds), "", t0)
			_, err := c.Fetch(context.Background())
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), "seed s1 ("+seeds[0].seed.URL+")") {
				t.Errorf("error does not name the seed: %v", err)
			}
		})
	}
}

// TestCappedReader checks the cap's edge: exactly the limit passes, one
// byte more fails.
func TestCappedReader(t *testing.T) {
	for n, ok := range map[int]bool{0: true, 9: true, 10: true, 11: false, 1000: false} {
		r := &cappedReader{r: bytes.NewReader(make([]byte, n)), left: 10, what: "test"}
		b, err := io.ReadAll(r)
		if ok && (err != nil || len(b) != n) {
			t.Errorf("%d bytes: %d read, %v", n, len(b), err)
		}
		if !ok && !errors.Is(err, directory.ErrTooLarge) {
			t.Errorf("%d bytes: %v, want ErrTooLarge", n, err)
		}
	}
}

func TestGzipAccepted(t *testing.T) {
	seeds := newSeeds(t, 1)
	relays := testRelays(t, 3)
	doc := dirtest.SignedConsensus(t, seeds[0].key, t0, relays)
	seeds[0].serve(serveBytes(gzipped(t, doc.Bytes()), "Content-Encoding", "gzip"))
	c, _ := newClient(t, pins(seeds), "", t0)
	v, err := c.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sameRelays(t, v, relays)
}

func TestNewChecksOptions(t *testing.T) {
	seeds := pins(newSeeds(t, 2))
	dup := slices.Clone(seeds)
	dup[1].ID = dup[0].ID
	badURL := slices.Clone(seeds)
	badURL[0].URL = "ftp://x"
	noName := slices.Clone(seeds)
	noName[1].Name = ""
	for name, s := range map[string][]Seed{"none": nil, "duplicate identity": dup, "bad URL": badURL, "no name": noName} {
		if _, err := New(Options{Seeds: s}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c, err := New(Options{Seeds: seeds})
	if err != nil {
		t.Fatal(err)
	}
	tr, ok := c.http.Transport.(*http.Transport)
	if !ok || tr.Proxy != nil {
		t.Fatal("default transport may use a proxy from the environment")
	}
}

func TestSeedsFromConfig(t *testing.T) {
	s := newSeeds(t, 1)[0].seed
	got, err := SeedsFromConfig([]conf.SeedPin{{Name: s.Name, DirURL: s.URL, Identity: s.ID.String()}})
	if err != nil || len(got) != 1 || got[0] != s {
		t.Fatalf("SeedsFromConfig: %v, %v", got, err)
	}
	_, err = SeedsFromConfig([]conf.SeedPin{{Name: "s9", DirURL: s.URL, Identity: "nope"}})
	if err == nil || !strings.Contains(err.Error(), "seed s9") {
		t.Fatalf("bad identity: %v", err)
	}
}
