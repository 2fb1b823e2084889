package dirclient

import (
	"context"
	"runtime"
	"testing"
	"time"

	"veil/directory"
	"veil/onion/keys"
)

func TestNextFetch(t *testing.T) {
	now := t0
	c, _ := newClient(t, pins(newSeeds(t, 1)), "", now)
	c.minRefresh = 30 * time.Second
	if got := c.nextFetch(time.Time{}, 0); !got.Equal(now) {
		t.Errorf("no view: next %v, want now", got)
	}
	for failures, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 10: retryMax, 100: retryMax} {
		if got := c.nextFetch(now, failures); !got.Equal(now.Add(want)) {
			t.Errorf("no view, %d failures: next in %v, want %v", failures, got.Sub(now), want)
		}
	}
	up := directory.Entry{Flags: directory.FlagRunning | directory.FlagValid}
	c.view = &directory.View{ValidAfter: now, FreshUntil: now.Add(time.Minute), ValidUntil: now.Add(time.Hour),
		Relays: []directory.Entry{up, up, up}}
	if got := c.nextFetch(time.Time{}, 0); !got.Equal(now.Add(time.Minute)) {
		t.Errorf("fresh cached view: next in %v, want at fresh-until", got.Sub(now))
	}
	if got := c.nextFetch(now.Add(-50*time.Second), 0); !got.Equal(now.Add(time.Minute)) {
		t.Errorf("fresh view: next in %v, want at fresh-until", got.Sub(now))
	}
	c.view.FreshUntil = now.Add(time.Second)
	if got := c.nextFetch(now, 0); !got.Equal(now.Add(30 * time.Second)) {
		t.Errorf("short fresh-until: next in %v, want MinRefresh", got.Sub(now))
	}
	if got := c.nextFetch(now, 1); !got.Equal(now.Add(30 * time.Second)) {
		t.Errorf("failure with a usable view: next in %v, want MinRefresh", got.Sub(now))
	}
	// A valid view with too few relays for a circuit is fetched again
	// with backoff, not after MinRefresh (a client's is an hour).
	c.view.Relays = c.view.Relays[:2]
	if got := c.nextFetch(now, 1); !got.Equal(now.Add(time.Second)) {
		t.Errorf("a view of two relays: next in %v, want the backoff", got.Sub(now))
	}
	c.view.Relays = append(c.view.Relays, up)
	c.view.ValidUntil = now.Add(-time.Second)
	if got := c.nextFetch(now, 1); !got.Equal(now.Add(time.Second)) {
		t.Errorf("failure with an expired view: next in %v, want the backoff", got.Sub(now))
	}
}

// signFresh signs a document valid from at and fresh for a second.
func signFresh(t testing.TB, seed *keys.Identity, at time.Time, entries []directory.Entry) *directory.Consensus {
	t.Helper()
	c := &directory.Consensus{ValidAfter: at, FreshUntil: at.Add(time.Second), ValidUntil: at.Add(time.Hour), Relays: entries}
	if _, err := c.Sign(seed); err != nil {
		t.Fatal(err)
	}
	return c
}

// hangTimeout bounds every wait in these tests. It detects a hang, never
// measures speed: a loaded two-core machine under the race detector must
// still pass.
const hangTimeout = 2 * time.Minute

// TestRun runs the loop on the real clock: it retries while the seeds have
// nothing, picks up the first documents, refreshes when fresh-until passes
// and stops when its context ends.
func TestRun(t *testing.T) {
	before := runtime.NumGoroutine()
	seeds := newSeeds(t, 3)
	c, err := New(Options{Seeds: pins(seeds), MinRefresh: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(hangTimeout):
			t.Fatal("Run did not stop")
		}
		c.Close()
		for _, s := range seeds {
			s.ts.Close()
		}
		// Nothing of the client or the seeds is left running.
		deadline := time.Now().Add(hangTimeout)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("%d goroutines left running, %d before", n, before)
		}
	}()
	waitFor := func(what string, ok func(*directory.View) bool) {
		t.Helper()
		deadline := time.Now().Add(hangTimeout)
		for time.Now().Before(deadline) {
			if v := c.View(); v != nil && ok(v) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s", what)
	}

	time.Sleep(100 * time.Millisecond) // the first fetch finds nothing
	now := time.Now().Truncate(time.Second)
	first, second := testRelays(t, 2), testRelays(t, 3)
	for _, s := range seeds {
		s.publish(signFresh(t, s.key, now, first))
	}
	waitFor("the first view", func(v *directory.View) bool { return len(v.Relays) == 2 })
	for _, s := range seeds {
		s.publish(signFresh(t, s.key, now.Add(time.Second), second))
	}
	waitFor("the refreshed view", func(v *directory.View) bool { return len(v.Relays) == 3 })
}
