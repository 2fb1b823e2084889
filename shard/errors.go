package shard

import (
	"errors"
	"fmt"
)

// Sentinels callers branch on. Every error of this package begins with
// "shard: " and wraps at most one of them (a *ShardsError matches two).
var (
	// ErrBadLink: the link does not parse: mistyped, damaged, or from an
	// unknown version (SPEC.md §3).
	ErrBadLink = errors.New("shard: bad link")
	// ErrNotEnoughShards: fewer than the needed number of shards of a segment
	// passed verification; fetching more (alternates, SPEC.md §8) may help.
	ErrNotEnoughShards = errors.New("shard: not enough shards")
	// ErrTampered: data that should be authentic is not: a shard failed its
	// hash, or a segment, the manifest or the head failed authentication.
	ErrTampered = errors.New("shard: tampered")
	// ErrShortInput: the reader ended before the size given to the encoder.
	ErrShortInput = errors.New("shard: input shorter than its stated size")
)

// ShardsError says why a segment (or the head) could not be rebuilt: Good
// shards passed verification, Bad ones were dropped for a wrong length or hash
// (or, for the head, failed authentication), and Need were needed. It matches
// ErrNotEnoughShards, and also ErrTampered when Bad > 0.
type ShardsError struct {
	Kind            Kind
	Index           uint64
	Good, Bad, Need int
}

func (e *ShardsError) Error() string {
	s := fmt.Sprintf("shard: %s segment %d: not enough shards: %d verified, %d needed", e.Kind, e.Index, e.Good, e.Need)
	if e.Kind == KindHead {
		s = fmt.Sprintf("shard: head: no replica verified (%d offered)", e.Bad)
		if e.Bad > 0 {
			s += ": tampered, or not of this share"
		}
		return s
	}
	if e.Bad > 0 {
		s += fmt.Sprintf("; %d dropped as tampered or not of this share", e.Bad)
	}
	return s
}

// Is makes errors.Is(err, ErrNotEnoughShards) hold, and ErrTampered too when
// some shards were dropped.
func (e *ShardsError) Is(target error) bool {
	return target == ErrNotEnoughShards || (target == ErrTampered && e.Bad > 0)
}
