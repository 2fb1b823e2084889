package shard

import (
	"testing"
	"time"

	"veil/shard/store"
)

// TestBucketTTL: a TTL rounds up to the smallest public bucket that holds
// it, never down; past the largest it is an error (SPEC.md §8.2).
func TestBucketTTL(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		in, want time.Duration
	}{
		{time.Second, day},
		{day, day},
		{day + time.Nanosecond, 3 * day},
		{50 * time.Hour, 3 * day},
		{72 * time.Hour, 3 * day},
		{DefaultTTL, 7 * day},
		{8 * day, 30 * day},
		{90 * day, 90 * day},
	} {
		got, err := BucketTTL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("BucketTTL(%v) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []time.Duration{0, -time.Hour, 90*day + time.Second} {
		if got, err := BucketTTL(bad); err == nil {
			t.Errorf("BucketTTL(%v) = %v, want an error", bad, got)
		}
	}
	for i, b := range TTLBuckets {
		if b%time.Hour != 0 || i > 0 && b <= TTLBuckets[i-1] {
			t.Fatalf("bucket %d (%v): buckets are whole hours, in increasing order", i, b)
		}
	}
}

// TestBucketsMatchTheStore: the largest bucket is what relays keep at most
// by default, and the default bucket is their default TTL, so a share at
// either is never refused by a relay with default limits.
func TestBucketsMatchTheStore(t *testing.T) {
	if last := TTLBuckets[len(TTLBuckets)-1]; last != store.DefaultMaxTTL {
		t.Errorf("largest bucket %v, store.DefaultMaxTTL %v", last, store.DefaultMaxTTL)
	}
	if DefaultTTL != store.DefaultTTL {
		t.Errorf("DefaultTTL %v, store.DefaultTTL %v", DefaultTTL, store.DefaultTTL)
	}
}
