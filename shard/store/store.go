// Package store is shard storage on a relay: PUT, GET and HAS by shard ID
// within a disk quota. Shards are written atomically and fsync'd, checked
// on read, expired after a TTL, and kept across restarts (DESIGN.md G9,
// G10). It also holds the storage commands' wire format (wire.go) and the
// per-circuit rate limiter (limit.go). It imports nothing from relay or
// shard; both import it.
package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// IDLen is the length of a shard ID.
const IDLen = 32

// Limits and defaults (G9).
const (
	// MaxShardSize is the largest shard content a relay accepts, and the
	// largest data a storage message carries. Shards carry at most 4 MiB of
	// coded segment data; the 4 KiB on top leave room for the shard format's
	// own header and AEAD tag (shard/SPEC.md) without a second limit.
	MaxShardSize = 4<<20 + 4<<10

	// DefaultTTL is how long a shard lives when the sharer names no TTL:
	// long enough for a link handed over today to be fetched after a
	// weekend away, short enough that abandoned shares free the disk a
	// relay donates.
	DefaultTTL = 7 * 24 * time.Hour

	// DefaultMaxTTL bounds what a sharer may ask: a relay commits its disk
	// to an anonymous stranger for at most a quarter, and a seized disk
	// holds no ciphertext older than that. A PUT of the same shard again
	// extends its expiry. It is also the largest of the public TTLs
	// clients use (shard.TTLBuckets).
	DefaultMaxTTL = 90 * 24 * time.Hour

	// DefaultMaxShards bounds the in-memory index independently of the
	// quota, since a quota filled with tiny shards would otherwise cost
	// memory in proportion to the number of shards: 1 Mi entries of about
	// 150 bytes is under 200 MB, and at 1 MiB shards is a 1 TiB store.
	DefaultMaxShards = 1 << 20

	// DefaultSweepInterval is how often Run removes expired shards. Expired
	// shards are invisible at once; the sweep only returns their space, and
	// Put sweeps by itself when space is short and something has expired.
	DefaultSweepInterval = 10 * time.Minute

	// maxQuarantined bounds the files kept in dir/quarantine for an
	// operator to look at; older ones are deleted.
	maxQuarantined = 64

	// ExpiryGranularity is how finely a stored shard's expiry is kept:
	// Put rounds now + TTL up to a whole hour of Unix time (shard/SPEC.md
	// §8.2). A nanosecond expiry is the shard's arrival time to the
	// nanosecond, kept in every header for as long as the shard lives and
	// in any copy of the disk; rounded, the shards of one share and
	// everyone else's that arrived in the same hour with the same TTL
	// look alike. A shard lives at most an hour longer than asked.
	ExpiryGranularity = time.Hour
)

// coarseExpiry is the expiry Put stores for a shard put at now (Unix
// nanoseconds) for ttl: now + ttl rounded up to ExpiryGranularity.
func coarseExpiry(now int64, ttl time.Duration) int64 {
	g := int64(ExpiryGranularity)
	e := now + int64(ttl)
	if r := e % g; r != 0 {
		e += g - r
	}
	return e
}

// Errors that callers branch on; StatusOf maps each to a wire Status.
var (
	ErrNotFound = errors.New("store: shard not found")
	ErrQuota    = errors.New("store: quota exceeded")
	ErrConflict = errors.New("store: shard ID already holds other content")
	ErrTooLarge = errors.New("store: shard too large")
	ErrCorrupt  = errors.New("store: shard corrupt")
	ErrInvalid  = errors.New("store: invalid request")
)

// Options configures a Store. Zero fields take the defaults named above.
type Options struct {
	// Quota bounds the bytes of shard files (HeaderLen + content each) the
	// store holds. Required: no default disk budget is safe to guess.
	Quota int64
	// MaxShardSize bounds one shard's content; at most MaxShardSize.
	MaxShardSize int
	// MaxShards bounds the number of shards, and so the index's memory.
	MaxShards int
	// DefaultTTL applies to a Put with ttl 0; MaxTTL refuses a longer one.
	DefaultTTL, MaxTTL time.Duration
	// SweepInterval is Run's period.
	SweepInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives damage and sweep reports; nil means silent.
	Logger *slog.Logger
}

func (o *Options) fill() error {
	if o.Quota <= 0 {
		return fmt.Errorf("store: quota %d, want a positive number of bytes", o.Quota)
	}
	if o.MaxShardSize == 0 {
		o.MaxShardSize = MaxShardSize
	}
	if o.MaxShardSize < 0 || o.MaxShardSize > MaxShardSize {
		return fmt.Errorf("store: max shard size %d outside 1..%d", o.MaxShardSize, MaxShardSize)
	}
	if o.MaxShards == 0 {
		o.MaxShards = DefaultMaxShards
	}
	if o.MaxTTL == 0 {
		o.MaxTTL = DefaultMaxTTL
	}
	if o.DefaultTTL == 0 {
		o.DefaultTTL = min(DefaultTTL, o.MaxTTL)
	}
	if o.MaxShards < 0 || o.MaxTTL < 0 || o.DefaultTTL < 0 || o.DefaultTTL > o.MaxTTL {
		return fmt.Errorf("store: bad limits: %d shards, default ttl %v, max ttl %v", o.MaxShards, o.DefaultTTL, o.MaxTTL)
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// entry is what the index keeps per shard: about 150 bytes with the map's
// own overhead, so the index is O(number of shards) ≤ MaxShards entries.
// The content hash lets Put tell an identical re-PUT from a conflicting
// one without reading the disk.
type entry struct {
	size   int64 // file size: HeaderLen + content
	expiry int64 // Unix nanoseconds; gone once now ≥ expiry
	sum    [sha256.Size]byte
}

// Store is a relay's shard store. It is safe for concurrent use.
//
// Lock order: writeMu, then mu. Get and Has take mu only, for a lookup,
// and read files without a lock (a rename replaces a file whole).
type Store struct {
	dir  string
	opts Options
	log  *slog.Logger

	// writeMu serializes everything that changes files: Put, Sweep, and
	// quarantining a shard Get found damaged.
	writeMu sync.Mutex

	mu         sync.Mutex // guards the following fields
	index      map[[IDLen]byte]entry
	usage      int64  // sum of index sizes
	nextExpiry int64  // no entry expires before this (a lower bound)
	expired    uint64 // shards removed by sweeps since Open, for metrics
}

// Open opens the store in dir, creating it (mode 0700) if missing, and
// rebuilds the index from the files there. It removes temporary files
// left by a crash and expired shards, and quarantines files whose header
// is damaged or whose length disagrees with it, logging each. Content
// hashes are checked by Get, not here, so Open reads only headers.
func Open(dir string, opts Options) (*Store, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	s := &Store{dir: dir, opts: opts, log: opts.Logger, index: make(map[[IDLen]byte]entry)}
	if err := s.load(); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	if s.usage > opts.Quota || len(s.index) > opts.MaxShards {
		s.log.Warn("store: usage exceeds the limits; refusing new shards until it drops",
			"bytes", s.usage, "quota", opts.Quota, "shards", len(s.index), "max_shards", opts.MaxShards)
	}
	return s, nil
}

// Put stores data under id for ttl (0 means the default TTL), until now +
// ttl rounded up to the next whole hour (ExpiryGranularity). A ttl above
// MaxTTL is refused with ErrInvalid rather than clamped: the sharer chose
// it and must learn that the relay will not keep the shard that long.
// Putting the same content under the same ID again succeeds and extends
// the expiry to the later of the two; other content under a live ID is
// ErrConflict. Oversize data is ErrTooLarge; a full store is ErrQuota.
// Put returns once the shard is on disk and fsync'd.
func (s *Store) Put(id [IDLen]byte, data []byte, ttl time.Duration) error {
	if len(data) > s.opts.MaxShardSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), s.opts.MaxShardSize)
	}
	switch {
	case ttl == 0:
		ttl = s.opts.DefaultTTL
	case ttl < 0 || ttl > s.opts.MaxTTL:
		return fmt.Errorf("%w: ttl %v outside 0..%v", ErrInvalid, ttl, s.opts.MaxTTL)
	}
	sum := sha256.Sum256(data)
	size := int64(HeaderLen) + int64(len(data))

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	now := s.opts.Now().UnixNano()
	expiry := coarseExpiry(now, ttl)

	s.mu.Lock()
	e, exists := s.index[id]
	full := s.usage+size > s.opts.Quota || len(s.index) >= s.opts.MaxShards
	sweep := exists && e.expiry <= now || !exists && full && s.nextExpiry <= now
	s.mu.Unlock()
	if sweep { // an expired shard is as if absent, and its space is free
		s.sweep(now)
	}
	s.mu.Lock()
	e, exists = s.index[id]
	usage, count := s.usage, len(s.index)
	s.mu.Unlock()

	if exists {
		if e.sum != sum || e.size != size {
			return fmt.Errorf("%w: %x", ErrConflict, id[:4])
		}
		if expiry <= e.expiry {
			return nil
		}
	} else if usage+size > s.opts.Quota || count >= s.opts.MaxShards {
		return fmt.Errorf("%w: %d of %d bytes and %d of %d shards used, %d bytes asked",
			ErrQuota, usage, s.opts.Quota, count, s.opts.MaxShards, size)
	}

	path := shardPath(s.dir, &id)
	if err := mkdirDurable(filepath.Dir(path)); err != nil {
		return fmt.Errorf("store: put: %w", err)
	}
	h := fileHeader{id: id, expiry: expiry, length: uint32(len(data)), sum: sum}
	if err := writeFileAtomic(path, marshalShardFile(&h, data)); err != nil {
		return fmt.Errorf("store: put: %w", err)
	}

	s.mu.Lock()
	if !exists {
		s.usage += size
	}
	s.index[id] = entry{size: size, expiry: expiry, sum: sum}
	s.nextExpiry = min(s.nextExpiry, expiry)
	s.mu.Unlock()
	return nil
}

// Get returns the content of shard id after checking its hash. A shard
// that fails the check is never returned: Get quarantines its file, drops
// it from the index, logs it and returns ErrCorrupt. A missing or expired
// shard is ErrNotFound.
func (s *Store) Get(id [IDLen]byte) ([]byte, error) {
	if !s.Has(id) {
		return nil, fmt.Errorf("%w: %x", ErrNotFound, id[:4])
	}
	data, err := s.read(id)
	if err == nil {
		return data, nil
	}
	// Check again under writeMu: a Sweep or a re-PUT may have replaced the
	// file between the lookup and the read.
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	e, ok := s.index[id]
	s.mu.Unlock()
	if !ok || e.expiry <= s.opts.Now().UnixNano() {
		return nil, fmt.Errorf("%w: %x", ErrNotFound, id[:4])
	}
	if data, err = s.read(id); err == nil {
		return data, nil
	}
	path := shardPath(s.dir, &id)
	if errors.Is(err, os.ErrNotExist) {
		s.log.Error("store: shard file vanished", "path", path)
	} else {
		s.quarantine(path, filepath.Base(path), err)
	}
	s.mu.Lock()
	s.removeIndexLocked(id, e)
	s.mu.Unlock()
	return nil, fmt.Errorf("%w: %x: %w", ErrCorrupt, id[:4], err)
}

// read reads and checks the file of shard id.
func (s *Store) read(id [IDLen]byte) ([]byte, error) {
	b, err := os.ReadFile(shardPath(s.dir, &id))
	if err != nil {
		return nil, err
	}
	h, data, err := parseShardFile(b)
	if err == nil && h.id != id {
		err = damagedf("header names shard %x", h.id[:4])
	}
	return data, err
}

// Has reports whether shard id is stored and unexpired. It does not read
// the disk; Get is what checks the content.
func (s *Store) Has(id [IDLen]byte) bool {
	now := s.opts.Now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.index[id]
	return ok && e.expiry > now
}

// Usage returns the bytes and the number of shards held, expired shards
// not yet swept included.
func (s *Store) Usage() (bytes int64, shards int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usage, len(s.index)
}

// Expired returns how many shards sweeps have removed since Open because
// their time ran out. The store never evicts a live shard: a full store
// refuses a Put (ErrQuota) instead.
func (s *Store) Expired() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expired
}

// Delete removes shard id. It is for the operator and for tests; the
// storage commands offer no way to reach it from the network.
func (s *Store) Delete(id [IDLen]byte) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	e, ok := s.index[id]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %x", ErrNotFound, id[:4])
	}
	// The file goes first: were the entry dropped and the removal to fail,
	// the next Open would bring the shard back.
	if err := os.Remove(shardPath(s.dir, &id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: delete: %w", err)
	}
	s.mu.Lock()
	s.removeIndexLocked(id, e)
	s.mu.Unlock()
	return nil
}

// Sweep removes expired shards and returns how many it removed.
func (s *Store) Sweep() int {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.sweep(s.opts.Now().UnixNano())
}

// sweep removes every shard expired at now. writeMu is held, mu is not:
// the entries go under mu, the files after it, so Get and Has never wait
// on the disk. Removals are not fsync'd, and one that fails or is lost to
// a crash leaves an expired file, which the next Open removes.
func (s *Store) sweep(now int64) int {
	var expired [][IDLen]byte
	next := maxExpiry
	s.mu.Lock()
	for id, e := range s.index {
		if e.expiry <= now {
			s.removeIndexLocked(id, e)
			expired = append(expired, id)
		} else {
			next = min(next, e.expiry)
		}
	}
	s.nextExpiry = next
	s.expired += uint64(len(expired))
	s.mu.Unlock()
	for _, id := range expired {
		if err := os.Remove(shardPath(s.dir, &id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("store: cannot remove expired shard file", "id", fmt.Sprintf("%x", id), "err", err)
		}
	}
	if len(expired) > 0 {
		s.log.Debug("store: swept expired shards", "count", len(expired))
	}
	return len(expired)
}

// removeIndexLocked drops shard id's entry. mu is held.
func (s *Store) removeIndexLocked(id [IDLen]byte, e entry) {
	delete(s.index, id)
	s.usage -= e.size
}

// Run sweeps every SweepInterval until ctx is done. The caller owns the
// goroutine that runs it; cancelling ctx stops it, and Run returns
// ctx.Err() once it has.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			s.Sweep()
		}
	}
}
