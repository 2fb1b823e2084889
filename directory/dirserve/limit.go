package dirserve

import (
	"container/list"
	"math"
	"net/netip"
	"sync"
	"time"
)

const (
	// DefaultRateLimitPerMinute is a client's sustained request rate. A
	// veil client fetches once per fresh-until (a minute by default) and
	// at most once per consensus_refresh, so 60 leaves room for many
	// clients behind one address while a flooder gets one answer a second.
	DefaultRateLimitPerMinute = 60

	// MaxClients bounds the rate limiter's table (G9). An entry costs about
	// 150 bytes, so the table stays under 2 MiB however many addresses a
	// flood comes from; beyond it the least recently seen entry is dropped,
	// and a dropped client merely starts again with a full bucket.
	MaxClients = 10000
)

// limiter is a token bucket per client address: rate tokens a second up
// to burst, one token per request.
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	max   int // most entries held

	mu      sync.Mutex // guards the following fields
	clients map[netip.Addr]*list.Element
	lru     list.List // of *bucket, most recently seen at the front
}

type bucket struct {
	addr   netip.Addr
	tokens float64
	last   time.Time // when tokens was computed
}

// newLimiter returns a limiter allowing perMinute requests a minute to
// each client, in bursts of half that (at least 1).
func newLimiter(perMinute, maxClients int) *limiter {
	return &limiter{
		rate:    float64(perMinute) / 60,
		burst:   math.Max(1, float64(perMinute/2)),
		max:     maxClients,
		clients: make(map[netip.Addr]*list.Element),
	}
}

// clientKey is the address a request is charged to: IPv4 (also when
// IPv4-mapped) as it is, IPv6 by its /64.
func clientKey(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// allow charges one request from addr at now. When the bucket is empty it
// returns false and how long until a token is back.
func (l *limiter) allow(addr netip.Addr, now time.Time) (bool, time.Duration) {
	key := clientKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket
	if el, ok := l.clients[key]; ok {
		l.lru.MoveToFront(el)
		b = el.Value.(*bucket)
		if dt := now.Sub(b.last).Seconds(); dt > 0 {
			b.tokens = math.Min(l.burst, b.tokens+dt*l.rate)
		}
		b.last = now
	} else {
		for l.lru.Len() >= l.max {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.clients, old.Value.(*bucket).addr)
		}
		b = &bucket{addr: key, tokens: l.burst, last: now}
		l.clients[key] = l.lru.PushFront(b)
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// size returns the number of clients in the table.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}
