package shard

import (
	"crypto/sha256"
	"fmt"
)

// Rebuilt is every shard of one segment (or every head replica) after a
// repair check: All holds each shard byte for byte as the share made it,
// Missing the positions that were not offered or failed verification, the
// ones a repair stores again (SPEC.md §8.1).
type Rebuilt struct {
	All     [][]byte
	Missing []int
}

// Rebuild verifies every shard offered for the current Want (nil = not
// found) and recomputes the missing and damaged ones from those that
// verify, so that `veil repair` can store them again. A rebuilt shard is
// checked against its hash like a fetched one. It does not advance the
// Decoder: call Add with the same shards afterwards, which authenticates the
// segment and moves on. Fewer good shards than Need gives a *ShardsError.
func (d *Decoder) Rebuild(shards [][]byte) (*Rebuilt, error) {
	if d.err != nil {
		return nil, d.err
	}
	switch d.kind {
	case KindHead:
		return d.rebuildHead(shards)
	case KindManifest:
		n, j := int64(d.c.p.N()), int64(d.index)
		return d.c.rebuild(KindManifest, d.index, shards, d.head.hashes[j*n:(j+1)*n])
	case KindData:
		return d.c.rebuild(KindData, d.index, shards, d.manifest.SegmentHashes(int64(d.index)))
	}
	return nil, fmt.Errorf("shard: Rebuild after the decoder finished")
}

// rebuildHead re-seals every head replica from the first one that opens
// and matches the root: sealing is deterministic for a key, nonce and
// plaintext, so the copies are the originals (SPEC.md §6.2).
func (d *Decoder) rebuildHead(replicas [][]byte) (*Rebuilt, error) {
	p := d.c.p
	if len(replicas) != p.HeadReplicas() {
		return nil, fmt.Errorf("shard: head: %d replica slots offered, want %d", len(replicas), p.HeadReplicas())
	}
	var pt []byte
	bad := 0
	for r, data := range replicas {
		if data == nil {
			continue
		}
		got, ok := d.openHeadReplica(r, data)
		if !ok {
			bad++
			continue
		}
		pt = got
		break
	}
	if pt == nil {
		return nil, &ShardsError{Kind: KindHead, Bad: bad, Need: 1}
	}
	out := &Rebuilt{All: make([][]byte, len(replicas))}
	for r, data := range replicas {
		want := d.c.keys.head.Seal(make([]byte, 0, d.c.ss), segmentNonce(uint64(r), true), pt, nil)
		out.All[r] = want
		if data == nil || string(data) != string(want) {
			out.Missing = append(out.Missing, r)
		}
	}
	return out, nil
}

// openHeadReplica opens replica r and returns its plaintext if it is the
// head the link commits to (SPEC.md §6.2).
func (d *Decoder) openHeadReplica(r int, data []byte) ([]byte, bool) {
	if len(data) != d.c.ss {
		return nil, false
	}
	pt, err := d.c.keys.head.Open(nil, segmentNonce(uint64(r), true), data, nil)
	if err != nil || sha256.Sum256(pt) != d.link.Root {
		// A plaintext authentic under the file key but not the one the
		// link commits to was made by a key holder, not a relay.
		return nil, false
	}
	return pt, true
}

// rebuild hashes every offered shard (unlike open, which stops at K good
// ones: a repair must find every damaged copy), rebuilds all N from the
// good ones and checks each rebuilt shard against its hash.
func (c *codec) rebuild(kind Kind, index uint64, shards [][]byte, hashes [][32]byte) (*Rebuilt, error) {
	n, k := c.p.N(), c.p.K
	if len(shards) != n {
		return nil, fmt.Errorf("shard: %s segment %d: %d shard slots offered, want %d", kind, index, len(shards), n)
	}
	out := &Rebuilt{All: make([][]byte, n)}
	good, bad := 0, 0
	for i, d := range shards {
		switch {
		case d == nil:
			out.Missing = append(out.Missing, i)
		case len(d) != c.ss || sha256.Sum256(d) != hashes[i]:
			bad++
			out.Missing = append(out.Missing, i)
		default:
			out.All[i] = d
			good++
		}
	}
	if good < k {
		return nil, &ShardsError{Kind: kind, Index: index, Good: good, Bad: bad, Need: k}
	}
	if len(out.Missing) == 0 {
		return out, nil
	}
	// Reconstruct fills the nil slots and leaves the offered ones alone.
	if err := c.rs.Reconstruct(out.All); err != nil {
		return nil, fmt.Errorf("shard: %s segment %d: reed-solomon: %w", kind, index, err)
	}
	for _, i := range out.Missing {
		if sha256.Sum256(out.All[i]) != hashes[i] {
			// K verified shards rebuild the rest exactly; a mismatch means
			// the listed hashes do not belong to one codeword, which only
			// a key holder can arrange.
			return nil, fmt.Errorf("%w: %s segment %d: rebuilt shard %d does not match its hash", ErrTampered, kind, index, i)
		}
	}
	return out, nil
}
