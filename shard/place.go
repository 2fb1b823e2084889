package shard

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"veil/onion/keys"
)

// Place ranks storage relays for the shards of one segment (SPEC.md §8):
// relay r's score for shard ID s is HMAC-SHA256(placementKey, s || r), a
// keyed rendezvous hash. Shard i, in order, takes its best-scoring relay not
// taken by shards 0..i-1, so the n shards land on n distinct relays and no
// relay ever holds two shards — hence never K — of one segment. The result
// has, per shard, that primary relay first, then its alternates: its other
// relays in score order, leaving out every primary of the segment. An
// uploader whose primary refuses moves down the list, skipping relays it
// already gave a shard of this segment; a fetcher asks in the same order.
// The relays' order does not matter; duplicates are an error, and so are
// fewer relays than shards. Every relay weighs the same: PlaceWeighted
// with weight 1 for all gives the same lists.
func Place(key [32]byte, ids [][32]byte, relays []keys.NodeID) ([][]keys.NodeID, error) {
	return PlaceWeighted(key, ids, relays, nil)
}

// PlaceWeighted is Place with a weight per relay (nil: 1 for all), a
// weighted rendezvous hash (SPEC.md §8): the score's first 53 bits, read
// as u in (0, 1), rank relay r by −ln(u)/w(r), lowest first, so each
// shard's first relay is r with probability w(r)/Σw, and relays of equal
// weight keep exactly the order Place gives them (compared by score, not
// by the rounded logarithm). Changing one relay's weight moves only that
// relay in each list. A weight that is not positive, or NaN, puts the
// relay last; weights above 1 count as 1, so no relay can rank above one
// that is uniformly weighted by more than its hash does.
func PlaceWeighted(key [32]byte, ids [][32]byte, relays []keys.NodeID, weight func(keys.NodeID) float64) ([][]keys.NodeID, error) {
	if len(ids) > MaxShards {
		return nil, fmt.Errorf("shard: place: %d shards, at most %d", len(ids), MaxShards)
	}
	if len(relays) < len(ids) {
		return nil, fmt.Errorf("shard: place: %d storage relays for %d shards of a segment: need one relay per shard", len(relays), len(ids))
	}
	sorted := slices.Clone(relays)
	slices.SortFunc(sorted, func(a, b keys.NodeID) int { return bytes.Compare(a[:], b[:]) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return nil, fmt.Errorf("shard: place: relay %x listed twice", sorted[i][:8])
		}
	}
	weights := make([]float64, len(sorted))
	for j, r := range sorted {
		weights[j] = 1
		if weight != nil {
			weights[j] = clampWeight(weight(r))
		}
	}
	mac := hmac.New(sha256.New, key[:])
	type scored struct {
		score [32]byte
		rank  float64 // −ln(u)/w, lower first; unused between equal weights
		relay int     // index into sorted
	}
	ranks := make([][]scored, len(ids))
	primary := make([]bool, len(sorted))
	out := make([][]keys.NodeID, len(ids))
	for i, id := range ids {
		rank := make([]scored, len(sorted))
		for j, r := range sorted {
			mac.Reset()
			mac.Write(id[:])
			mac.Write(r[:])
			mac.Sum(rank[j].score[:0])
			rank[j].relay = j
			if weight != nil {
				rank[j].rank = weightedRank(rank[j].score, weights[j])
			}
		}
		// Lowest rank first; between equal weights (and for ties, never
		// seen with HMAC) highest score first, then by node ID.
		slices.SortFunc(rank, func(a, b scored) int {
			if weights[a.relay] != weights[b.relay] {
				if c := cmp.Compare(a.rank, b.rank); c != 0 {
					return c
				}
			}
			if c := bytes.Compare(b.score[:], a.score[:]); c != 0 {
				return c
			}
			return a.relay - b.relay
		})
		ranks[i] = rank
		for _, s := range rank {
			if !primary[s.relay] {
				primary[s.relay] = true
				out[i] = []keys.NodeID{sorted[s.relay]}
				break
			}
		}
	}
	for i, rank := range ranks {
		for _, s := range rank {
			if !primary[s.relay] {
				out[i] = append(out[i], sorted[s.relay])
			}
		}
	}
	return out, nil
}

// clampWeight maps a weight into [0, 1]: NaN and negatives to 0 (last).
func clampWeight(w float64) float64 {
	if !(w > 0) {
		return 0
	}
	return min(w, 1)
}

// weightedRank is −ln(u)/w for the score's first 53 bits as u in (0, 1);
// +Inf for weight 0.
func weightedRank(score [32]byte, w float64) float64 {
	if w == 0 {
		return math.Inf(1)
	}
	u := (float64(binary.BigEndian.Uint64(score[:8])>>11) + 0.5) / (1 << 53)
	return -math.Log(u) / w
}
