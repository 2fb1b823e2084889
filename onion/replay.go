package onion

import (
	"crypto/sha256"
	"sync"
)

// DefaultReplayCacheSize is how many handshakes one generation of a
// ReplayCache remembers. Two generations are kept, so at 16-byte keys the
// cache costs at most a few tens of MB (G9) while covering ~40 s of a relay
// answering handshakes flat out on one core (~7,000/s, anchors/limits).
const DefaultReplayCacheSize = 1 << 18

// ReplayCache refuses a handshake request whose onion key and client
// ephemeral key it has seen before (G4). It keeps two generations of
// fingerprints: when the current one fills, the older is dropped. A request
// replayed after its entry was dropped still gains the attacker nothing but
// a fresh key exchange it cannot complete, since the relay's ephemeral key
// and ML-KEM encapsulation are new each time; the cache is bounded memory
// first and replay detection second.
type ReplayCache struct {
	size int

	mu       sync.Mutex // guards the two generations
	current  map[[16]byte]struct{}
	previous map[[16]byte]struct{}
}

// NewReplayCache returns a cache holding up to size entries per generation;
// size <= 0 means DefaultReplayCacheSize.
func NewReplayCache(size int) *ReplayCache {
	if size <= 0 {
		size = DefaultReplayCacheSize
	}
	return &ReplayCache{size: size, current: make(map[[16]byte]struct{})}
}

// Add records the request and reports whether it was new.
func (c *ReplayCache) Add(onionKey [x25519Len]byte, req []byte) bool {
	h := sha256.New()
	h.Write(onionKey[:])
	h.Write(req[reqXOff:reqEKOff])
	var sum [sha256.Size]byte
	var fp [16]byte
	copy(fp[:], h.Sum(sum[:0]))

	c.mu.Lock()
	defer c.mu.Unlock()
	if _, seen := c.current[fp]; seen {
		return false
	}
	if _, seen := c.previous[fp]; seen {
		return false
	}
	if len(c.current) >= c.size {
		c.previous = c.current
		c.current = make(map[[16]byte]struct{}, c.size)
	}
	c.current[fp] = struct{}{}
	return true
}

// Len reports how many fingerprints the cache holds.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.current) + len(c.previous)
}
