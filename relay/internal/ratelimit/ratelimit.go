// Package ratelimit is a relay's bandwidth cap: one token bucket for the
// bytes its links read and one for the bytes they write, shared by every
// link, after Tor's RelayBandwidthRate and RelayBandwidthBurst. It also
// counts what passed each way, for accounting (relay/internal/accounting).
//
// A link asks the bucket before it writes a batch of cells and after it
// has read each cell; when the bucket is empty the link's writer (or
// reader) waits, and the cells behind it wait in their circuits' queues on
// the link, which the writer serves one circuit after another (relay/link).
// So the cap is shared between links in the order they ask, and within a
// link between circuits in turn: one busy circuit does not starve the
// others.
//
// The buckets are golang.org/x/time/rate limiters: they keep time in
// reservations rather than in a refill timer, so a waiter that oversleeps
// (timer slack, a busy machine) loses nothing, and their rate and burst can
// change while links wait on them, which a reload needs.
package ratelimit

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Direction is which way bytes cross a link.
type Direction int

const (
	Read Direction = iota
	Write
)

// Limiter caps the bytes a relay's links read and write, each direction at
// the same rate and burst, and counts them. Its methods are safe for
// concurrent use. A nil *Limiter lets everything pass and counts nothing.
type Limiter struct {
	// buckets holds each direction's bucket, nil while there is no cap,
	// so that an uncapped relay pays one atomic load per request.
	buckets [2]atomic.Pointer[rate.Limiter]
	// order serialises each direction's requests with the time they are
	// made: x/time/rate takes the caller's time, and one older than the
	// bucket's last moves the bucket back to it, so that the time
	// between is credited twice. With every link's reader and writer
	// asking at once that added 15 % to a 20 MB/s cap.
	order   [2]sync.Mutex
	counted [2]atomic.Uint64
	// now is time.Now, replaceable in tests.
	now func() time.Time
}

// New returns a limiter at bytesPerSecond with a bucket of burst bytes,
// full; bytesPerSecond 0 is no cap (the limiter only counts).
func New(bytesPerSecond, burst uint64) *Limiter {
	l := &Limiter{now: time.Now}
	l.Set(bytesPerSecond, burst)
	return l
}

// MinBurst is the least bucket a capped limiter keeps: a link's largest
// single request, 16 cells of 4,096 bytes. A smaller burst is raised to
// it (conf refuses a burst below the rate and a rate below 75 KiB, so
// this only guards against misuse).
const MinBurst = 64 << 10

// Set changes the rate and burst at once: requests from now on are served
// at the new rate, and a bucket that was capped keeps its tokens (up to
// the new burst). bytesPerSecond 0 lifts the cap. A burst below the rate
// is raised to it, as Tor requires RelayBandwidthBurst >= RelayBandwidthRate.
func (l *Limiter) Set(bytesPerSecond, burst uint64) {
	for d := range l.buckets {
		l.order[d].Lock()
		now := l.now()
		if bytesPerSecond == 0 {
			l.buckets[d].Store(nil)
			l.order[d].Unlock()
			continue
		}
		r, b := rate.Limit(bytesPerSecond), int(max(burst, bytesPerSecond, MinBurst))
		// x/time/rate's own switch from Inf to a finite limit computes
		// tokens as 0 times Inf, so a bucket is made afresh (full) when
		// a cap starts and only adjusted while one lasts.
		if cur := l.buckets[d].Load(); cur != nil {
			cur.SetLimitAt(now, r)
			cur.SetBurstAt(now, b)
		} else {
			l.buckets[d].Store(rate.NewLimiter(r, b))
		}
		l.order[d].Unlock()
	}
}

// Allow takes n bytes from direction d's bucket if it holds them now, and
// reports whether it did. It never waits.
func (l *Limiter) Allow(d Direction, n int) bool {
	if l == nil {
		return true
	}
	if b := l.buckets[d].Load(); b != nil {
		l.order[d].Lock()
		ok := b.AllowN(l.now(), n)
		l.order[d].Unlock()
		if !ok {
			return false
		}
	}
	l.counted[d].Add(uint64(n))
	return true
}

// Wait takes n bytes from direction d's bucket, waiting until it holds
// them or stop is closed; it reports false, taking nothing, if stop closed
// first. Waiters are served in the order they asked.
func (l *Limiter) Wait(d Direction, n int, stop <-chan struct{}) bool {
	if l == nil {
		return true
	}
	b := l.buckets[d].Load()
	if b == nil {
		l.counted[d].Add(uint64(n))
		return true
	}
	l.order[d].Lock()
	now := l.now()
	r := b.ReserveN(now, n)
	l.order[d].Unlock()
	if !r.OK() {
		// More than a burst (only a caller ignoring MinBurst): let it
		// pass rather than stall the link for ever.
		l.counted[d].Add(uint64(n))
		return true
	}
	if delay := r.DelayFrom(now); delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			l.order[d].Lock()
			r.CancelAt(l.now())
			l.order[d].Unlock()
			return false
		}
	}
	l.counted[d].Add(uint64(n))
	return true
}

// Counted returns the bytes read and written through the limiter since it
// was made.
func (l *Limiter) Counted() (read, written uint64) {
	if l == nil {
		return 0, 0
	}
	return l.counted[Read].Load(), l.counted[Write].Load()
}

// Capped reports whether a cap is set.
func (l *Limiter) Capped() bool { return l != nil && l.buckets[Read].Load() != nil }

// Available returns the bytes direction d's bucket holds now (negative
// while waiters hold reservations); +Inf without a cap.
func (l *Limiter) Available(d Direction) float64 {
	b := l.buckets[d].Load()
	if b == nil {
		return math.Inf(1)
	}
	l.order[d].Lock()
	defer l.order[d].Unlock()
	return b.TokensAt(l.now())
}
