package dirclient

import (
	"context"
	"time"

	"veil/directory"
)

// Run keeps the view fresh until ctx ends: it fetches at once if it holds
// no fresh view (a cached one from LoadCache may be fresh), then again each
// time the view's fresh-until passes, never sooner than MinRefresh after
// the last fetch. After a failure it retries with exponential backoff
// (1 s doubling to 5 min, and no sooner than MinRefresh while a usable
// view is held); the current view stays in use until its valid-until.
//
// Run starts no goroutine of its own beyond those of each Fetch, which
// Fetch waits for, so when Run returns nothing of it is left running.
func (c *Client) Run(ctx context.Context) {
	var last time.Time // when the last fetch started; zero before the first
	failures := 0
	for {
		if wait := c.nextFetch(last, failures).Sub(c.now()); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		last = c.now()
		v, err := c.Fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			c.log.Warn("dirclient: consensus fetch failed", "failures", failures, "err", err)
			continue
		}
		if thin(v) {
			// A view that lists too few relays for a circuit (a client
			// started with the network, before its relays joined) is
			// fetched again soon, with backoff, not at the next
			// MinRefresh, which for a client is an hour.
			failures++
			c.log.Info("dirclient: the consensus lists too few relays for a circuit; fetching again soon", "relays", len(v.Relays))
			continue
		}
		failures = 0
	}
}

// nextFetch is when Run should fetch next, given when the last fetch
// started and how many have failed in a row.
func (c *Client) nextFetch(last time.Time, failures int) time.Time {
	now := c.now()
	c.mu.Lock()
	v := c.view
	c.mu.Unlock()
	usable := v != nil && now.Unix() <= v.ValidUntil.Unix() && !thin(v)
	var next time.Time
	switch {
	case failures > 0:
		backoff := retryMax
		if failures <= 16 {
			backoff = min(retryMax, retryMin<<(failures-1))
		}
		next = last.Add(backoff)
	case usable:
		next = v.FreshUntil
	default:
		return now
	}
	if usable && !last.IsZero() {
		next = later(next, last.Add(c.minRefresh))
	}
	return next
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// minPathRelays is how many Running, Valid relays a path needs: fewer, and
// the view is of no use yet, however valid it is.
const minPathRelays = 3

// thin says v lists fewer than minPathRelays Running, Valid relays.
func thin(v *directory.View) bool {
	n := 0
	for _, e := range v.Relays {
		if e.Flags&(directory.FlagRunning|directory.FlagValid) == directory.FlagRunning|directory.FlagValid {
			n++
		}
	}
	return n < minPathRelays
}
