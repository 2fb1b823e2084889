package shard

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
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
// fewer relays than shards.
func Place(key [32]byte, ids [][32]byte, relays []keys.NodeID) ([][]keys.NodeID, error) {
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
	mac := hmac.New(sha256.New, key[:])
	type scored struct {
		score [32]byte
		relay int // index into sorted
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
		}
		// Highest score first; ties (never seen with HMAC) by node ID.
		slices.SortFunc(rank, func(a, b scored) int {
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
