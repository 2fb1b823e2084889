package shard

import (
	"fmt"
	"time"
)

// TTLBuckets are the only TTLs a client puts on a shard (SPEC.md §8.2):
// a day, three days, a week (the default), thirty days and ninety days
// (store.DefaultMaxTTL). A TTL is the one field of a PUT the sharer
// chooses, and an unusual one (a `--ttl 50h` gave 50.0000 h on every shard
// of a share) would let storage relays pick that share's shards out of
// everything they hold; from five public values a relay learns only which
// of five crowds a shard is in. Append-only in spirit: a new bucket splits
// a crowd, so it needs a reason and a spec change.
var TTLBuckets = [...]time.Duration{
	24 * time.Hour,
	3 * 24 * time.Hour,
	7 * 24 * time.Hour,
	30 * 24 * time.Hour,
	90 * 24 * time.Hour,
}

// DefaultTTL is the bucket a share gets when the sharer names none: a
// week, long enough to hand a link over and have it fetched after a
// weekend away, short enough that relays do not fill with forgotten files.
const DefaultTTL = 7 * 24 * time.Hour

// BucketTTL returns the smallest public TTL that is at least ttl: the
// sharer asked for the shards to live that long, so it rounds up, never
// down. A TTL over the largest bucket is an error (relays refuse it too).
func BucketTTL(ttl time.Duration) (time.Duration, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("shard: ttl %v: must be positive", ttl)
	}
	for _, b := range TTLBuckets {
		if ttl <= b {
			return b, nil
		}
	}
	last := TTLBuckets[len(TTLBuckets)-1]
	return 0, fmt.Errorf("shard: ttl %v: at most %v (%d days), the longest relays keep a shard", ttl, last, last/(24*time.Hour))
}
