package ratelimit

import (
	"testing"
	"time"
)

// fakeClock returns a limiter whose clock the test moves.
func fakeClock(rate, burst uint64) (*Limiter, *time.Time) {
	t := time.Unix(1_000_000, 0)
	l := &Limiter{now: func() time.Time { return t }}
	l.Set(rate, burst)
	return l, &t
}

// passed is how many cells of 4,096 bytes Allow lets through when asked
// every millisecond for d.
func passed(l *Limiter, clock *time.Time, d time.Duration) uint64 {
	var n uint64
	for end := clock.Add(d); clock.Before(end); *clock = clock.Add(time.Millisecond) {
		for l.Allow(Write, 4096) {
			n += 4096
		}
	}
	return n
}

// TestCapHoldsOverTime: over any span a capped direction passes at most a
// burst plus the rate times the span, and at least the rate times the span
// once the burst is spent.
func TestCapHoldsOverTime(t *testing.T) {
	const rate, burst = 1 << 20, 2 << 20
	l, clock := fakeClock(rate, burst)
	first := passed(l, clock, time.Second)
	if first > burst+rate+4096 || first < burst+rate-8192 {
		t.Fatalf("first second passed %d bytes, want burst+rate = %d", first, burst+rate)
	}
	for i := range 5 {
		got := passed(l, clock, time.Second)
		if got > rate+4096 || got < rate-4096 {
			t.Fatalf("second %d passed %d bytes, want %d ± one cell", i+2, got, rate)
		}
	}
	r, w := l.Counted()
	if r != 0 || w != first+5*rate && (w < first+5*rate-5*4096 || w > first+5*rate+5*4096) {
		t.Fatalf("counted read %d written %d", r, w)
	}
	// The read bucket is its own: still full.
	if !l.Allow(Read, burst) {
		t.Fatal("the write direction used the read direction's tokens")
	}
}

// TestSetAppliesAtOnce: a new rate governs the next request; 0 lifts the
// cap; a cap set again starts with a full bucket.
func TestSetAppliesAtOnce(t *testing.T) {
	l, clock := fakeClock(1<<20, 1<<20)
	passed(l, clock, time.Second) // spend the burst
	l.Set(4<<20, 4<<20)
	if got := passed(l, clock, time.Second); got < 4<<20-4096 || got > 4<<20+4096 {
		t.Fatalf("after raising to 4 MiB/s: %d bytes in a second", got)
	}
	l.Set(0, 0)
	if l.Capped() || !l.Allow(Write, 1<<30) {
		t.Fatal("rate 0 still caps")
	}
	l.Set(1<<20, 3<<20)
	if !l.Allow(Write, 3<<20) || l.Allow(Write, 4096) {
		t.Fatal("a new cap does not start with exactly its burst")
	}
}

// TestBurstNeverBelowRate: a burst below the rate (or below MinBurst) is
// raised, so a link's batch always fits.
func TestBurstNeverBelowRate(t *testing.T) {
	l, _ := fakeClock(1<<20, 1)
	if !l.Allow(Write, 1<<20) {
		t.Fatal("burst below the rate was not raised to it")
	}
	l2, _ := fakeClock(1000, 0)
	if !l2.Allow(Write, MinBurst) {
		t.Fatal("burst below MinBurst was not raised to it")
	}
}

// TestWaitStops: a waiter leaves when told to, taking nothing, and a
// waiter that is served waits about as long as the rate says.
func TestWaitStops(t *testing.T) {
	l := New(100<<10, 100<<10)
	if !l.Allow(Write, 100<<10) {
		t.Fatal("a full bucket refused its burst")
	}
	stop := make(chan struct{})
	done := make(chan bool)
	go func() { done <- l.Wait(Write, 100<<10, stop) }()
	close(stop)
	select {
	case ok := <-done:
		if ok {
			t.Fatal("Wait reported success after stop")
		}
	case <-time.After(time.Minute):
		t.Fatal("Wait did not return after stop")
	}
	start := time.Now()
	if !l.Wait(Write, 10<<10, nil) {
		t.Fatal("Wait failed")
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("10 KiB from an empty 100 KiB/s bucket came after %v, want about 100ms", d)
	}
}

// TestNilPassesEverything: links of a node with no limiter pass nil.
func TestNilPassesEverything(t *testing.T) {
	var l *Limiter
	if !l.Allow(Write, 1<<30) || !l.Wait(Read, 1<<30, nil) || l.Capped() {
		t.Fatal("nil limiter limited")
	}
}
