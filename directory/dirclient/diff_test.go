package dirclient

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"veil/directory"
	"veil/directory/dirserve"
	"veil/directory/internal/dirtest"
)

// TestFetchesPerHour: with the defaults (a seed signs every minute, so
// fresh-until is a minute after valid-after; consensus_refresh is an
// hour), Run's schedule fetches once an hour: P documents an hour, or P
// diffs (SPEC.md §5.7.5).
func TestFetchesPerHour(t *testing.T) {
	now := t0
	c, _ := newClient(t, pins(newSeeds(t, 1)), "", now)
	c.minRefresh = time.Hour // conf.Client's consensus_refresh default
	up := directory.Entry{Flags: directory.FlagRunning | directory.FlagValid}
	var fetched []time.Time
	last := time.Time{}
	for at := now; ; {
		// The view the last fetch gave: valid from then, fresh a minute.
		c.view = &directory.View{ValidAfter: at, FreshUntil: at.Add(time.Minute), ValidUntil: at.Add(3 * time.Hour),
			Relays: []directory.Entry{up, up, up}}
		c.now = func() time.Time { return at }
		next := c.nextFetch(last, 0)
		if !next.Before(now.Add(6 * time.Hour)) {
			break
		}
		fetched = append(fetched, next)
		last, at = next, next
	}
	if len(fetched) != 6 {
		t.Fatalf("fetches at %v in 6 hours, want 6", fetched)
	}
	for i := 1; i < len(fetched); i++ {
		if d := fetched[i].Sub(fetched[i-1]); d != time.Hour {
			t.Fatalf("fetch %d: %v after the last, want an hour", i+1, d)
		}
	}
}

// recordingSeed records the X-Veil-Diff-From of each request and the
// Content-Type of each answer, in order.
type recordingSeed struct {
	h  http.Handler
	mu sync.Mutex // guards the following fields
	// from and types: one per request.
	from, types []string
}

func (r *recordingSeed) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.h.ServeHTTP(w, req)
	r.mu.Lock()
	r.from = append(r.from, req.Header.Get(dirserve.DiffFromHeader))
	r.types = append(r.types, w.Header().Get("Content-Type"))
	r.mu.Unlock()
}

func (r *recordingSeed) log() (from, types []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.from...), append([]string(nil), r.types...)
}

func hexOf(c *directory.Consensus) string {
	d := c.Digest()
	return hex.EncodeToString(d[:])
}

// TestFetchDiffsFromSeeds: a client that holds documents gets diffs; the
// first seed is asked alone, and the others' requests name its new
// document, from which their diffs are made; the documents held are the
// seeds' own, byte for byte.
func TestFetchDiffsFromSeeds(t *testing.T) {
	seeds := newSeeds(t, 3)
	rec := make([]*recordingSeed, len(seeds))
	for i, s := range seeds {
		rec[i] = &recordingSeed{h: s.srv.Handler()}
		s.serve(rec[i])
	}
	relays := testRelays(t, 6)
	publishAll(t, seeds, t0, relays)
	at := t0
	var mu sync.Mutex
	c, err := New(Options{Seeds: pins(seeds), Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return at }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	old := c.Held()

	next := append(testRelays(t, 7)[6:], relays[1:]...)
	var want []*directory.Consensus
	for _, s := range seeds {
		d := dirtest.SignedConsensus(t, s.key, t0.Add(time.Minute), next)
		s.publish(d)
		want = append(want, d)
	}
	mu.Lock()
	at = t0.Add(time.Minute)
	mu.Unlock()
	if _, err := c.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range seeds {
		if got := c.Held()[i]; got == nil || !bytes.Equal(got.Bytes(), want[i].Bytes()) {
			t.Fatalf("seed %d: the document held is not the seed's", i+1)
		}
		from, types := rec[i].log()
		if len(from) != 2 || from[0] != "" || types[1] != dirserve.DiffContentType {
			t.Fatalf("seed %d: requests naming %q answered %q; want a whole document, then a diff", i+1, from, types)
		}
		names := strings.Split(from[1], ", ")
		if names[0] != hexOf(old[i]) {
			t.Errorf("seed %d: first base named %s, want the document held from it", i+1, names[0])
		}
		if i > 0 && !strings.Contains(from[1], hexOf(want[0])) {
			t.Errorf("seed %d: the request does not name the first seed's new document", i+1)
		}
	}
}

// TestBadDiffFallsBack: a diff that does not parse, or that makes a
// document not signed by the seed asked for, is dropped and the whole
// document fetched; the client never holds what the diff made.
func TestBadDiffFallsBack(t *testing.T) {
	seeds := newSeeds(t, 3)
	relays := testRelays(t, 4)
	publishAll(t, seeds, t0, relays)
	at := t0
	var mu sync.Mutex
	logs := &logBuffer{}
	c, err := New(Options{Seeds: pins(seeds), Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return at }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	held := c.Held()

	newer := make([]*directory.Consensus, len(seeds))
	for i, s := range seeds {
		newer[i] = dirtest.SignedConsensus(t, s.key, t0.Add(time.Minute), relays[1:])
		s.publish(newer[i])
	}
	// The second seed's new document, as a diff from the first seed's
	// held one: well formed, well signed, but by the wrong seed.
	foreign, err := directory.MakeDiff(directory.NewDiffBase(held[0], nil), newer[1]).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"garbage", []byte("not a diff")},
		{"another seed's document", foreign},
	} {
		var diffs int
		seeds[0].serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(dirserve.DiffFromHeader) != "" {
				diffs++
				w.Header().Set("Content-Type", dirserve.DiffContentType)
				w.Write(tc.body)
				return
			}
			seeds[0].srv.Handler().ServeHTTP(w, r)
		}))
		c.mu.Lock()
		c.held[0], c.view = held[0], nil
		c.floor[0] = held[0].ValidAfter.Unix()
		c.mu.Unlock()
		mu.Lock()
		at = t0.Add(time.Minute)
		mu.Unlock()
		if _, err := c.Fetch(context.Background()); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := c.Held()[0]; !bytes.Equal(got.Bytes(), newer[0].Bytes()) || diffs != 1 {
			t.Fatalf("%s: after %d diffs the document held is not the seed's", tc.name, diffs)
		}
	}
	if !strings.Contains(logs.String(), "a consensus diff did not check") || !strings.Contains(logs.String(), "not by the pinned") {
		t.Errorf("the fallbacks are not logged with their reason:\n%s", logs)
	}
}
