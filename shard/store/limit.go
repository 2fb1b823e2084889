package store

import (
	"fmt"
	"sync"
	"time"
)

// LimiterConfig sets a circuit's storage rate: two token buckets, one
// counting bytes and one counting requests. A request passes only if both
// have tokens.
type LimiterConfig struct {
	BytesPerSecond    float64
	RequestsPerSecond float64
	// ByteBurst must be at least MaxPutLen, or the largest shard could
	// never pass. RequestBurst is at least 1.
	ByteBurst    int
	RequestBurst int
}

// DefaultLimiterConfig gives the per-circuit limits a storage relay uses.
// Each shard travels over its own circuit (DESIGN.md G7), so these bound
// what one circuit may cost a relay, not the relay's total.
func DefaultLimiterConfig() LimiterConfig {
	return LimiterConfig{
		// 8 MiB/s: well above a circuit's real throughput, so an honest
		// upload never waits, while a flood of PUTs on one circuit costs
		// the relay's disk at most that.
		BytesPerSecond: 8 << 20,
		// 2 largest PUTs at once: a retry after a lost answer passes.
		ByteBurst: 2 * MaxPutLen,
		// 50 requests/s, burst 100: HAS and GET probes during a fetch or
		// a repair come in bursts of one per segment; index lookups are
		// cheap, disk reads are paid for by the byte bucket.
		RequestsPerSecond: 50,
		RequestBurst:      100,
	}
}

// Limiter is a per-circuit token-bucket rate limiter. It is safe for
// concurrent use. Time is passed in, so tests need no clock.
type Limiter struct {
	cfg LimiterConfig

	mu    sync.Mutex // guards the following fields
	bytes float64    // tokens in the byte bucket
	reqs  float64    // tokens in the request bucket
	last  time.Time  // when the buckets were last filled; zero before first use
}

// NewLimiter returns a Limiter whose buckets start full.
func NewLimiter(cfg LimiterConfig) (*Limiter, error) {
	if !(cfg.BytesPerSecond > 0) || !(cfg.RequestsPerSecond > 0) || cfg.RequestBurst < 1 || cfg.ByteBurst < MaxPutLen {
		return nil, fmt.Errorf("store: limiter: want positive rates, request burst ≥ 1 and byte burst ≥ %d, got %+v", MaxPutLen, cfg)
	}
	return &Limiter{cfg: cfg, bytes: float64(cfg.ByteBurst), reqs: float64(cfg.RequestBurst)}, nil
}

// Allow reports whether one request moving n bytes may proceed at time
// now, and if so takes its tokens. A refused request takes nothing. n is
// the bytes the request puts on the relay's disk or reads from it: a PUT's
// message length, or a GET's answer (a relay that learns the size only
// after the lookup may charge MaxResultLen up front). Time going backwards
// adds no tokens.
func (l *Limiter) Allow(now time.Time, n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		if dt := now.Sub(l.last).Seconds(); dt > 0 {
			l.bytes = min(float64(l.cfg.ByteBurst), l.bytes+dt*l.cfg.BytesPerSecond)
			l.reqs = min(float64(l.cfg.RequestBurst), l.reqs+dt*l.cfg.RequestsPerSecond)
		}
	}
	if l.last.IsZero() || now.After(l.last) {
		l.last = now
	}
	if n < 0 || l.reqs < 1 || l.bytes < float64(n) {
		return false
	}
	l.reqs--
	l.bytes -= float64(n)
	return true
}
