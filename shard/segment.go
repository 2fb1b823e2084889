package shard

import (
	"crypto/sha256"
	"fmt"

	"github.com/klauspost/reedsolomon"
)

// Shard is one stored unit: every shard of a share has Params.ShardSize
// bytes. Relays see ID and Data, and a PUT's TTL and arrival (SPEC.md §7).
type Shard struct {
	ID   [32]byte // SPEC.md §4.3; the storage key
	Hash [32]byte // SHA-256(Data), listed in the manifest or head
	Data []byte
}

// Segment is the shards of one sealed segment, in shard order: K data
// shards then M parity shards (for the head: HeadReplicas replicas). Place
// takes their IDs as they are.
type Segment struct {
	Kind   Kind
	Index  uint64 // segment number within its kind (0 for the head)
	Shards []Shard
}

// IDs returns the segment's shard IDs in order, as Place wants them.
func (s *Segment) IDs() [][32]byte {
	ids := make([][32]byte, len(s.Shards))
	for i := range s.Shards {
		ids[i] = s.Shards[i].ID
	}
	return ids
}

// codec seals and opens the segments of one share (SPEC.md §4). Not safe for
// concurrent use (the ID hasher), cheap to make.
type codec struct {
	p    Params
	ss   int // shard size
	rs   reedsolomon.Encoder
	keys *shareKeys
	ids  *idHasher
}

func newCodec(p Params, fileKey *[32]byte) (*codec, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	rs, err := reedsolomon.New(p.K, p.M)
	if err != nil {
		return nil, fmt.Errorf("shard: reed-solomon k=%d m=%d: %w", p.K, p.M, err)
	}
	keys := deriveKeys(fileKey)
	return &codec{p: p, ss: p.ShardSize(), rs: rs, keys: keys, ids: newIDHasher(&keys.shardID)}, nil
}

// newSegmentBuf is a zeroed buffer for one segment's N shards. The plaintext
// goes into its first SegmentSize bytes, zero-padded (SPEC.md §4.4).
func (c *codec) newSegmentBuf() []byte { return make([]byte, c.p.N()*c.ss) }

// seal seals buf[:SegmentSize] in place, cuts the sealed segment into K data
// shards (the last one zero-padded), computes M parity shards and the IDs and
// hashes of all (SPEC.md §4.4, §4.5). The shards alias buf.
func (c *codec) seal(kind Kind, index uint64, last bool, buf []byte) *Segment {
	S, n := c.p.SegmentSize, c.p.N()
	c.keys.aead(kind).Seal(buf[:0], segmentNonce(index, last), buf[:S], nil)
	shards := make([][]byte, n)
	for i := range shards {
		shards[i] = buf[i*c.ss : (i+1)*c.ss : (i+1)*c.ss]
	}
	if err := c.rs.Encode(shards); err != nil {
		panic("shard: internal error: reed-solomon encode: " + err.Error())
	}
	seg := &Segment{Kind: kind, Index: index, Shards: make([]Shard, n)}
	for i, d := range shards {
		seg.Shards[i] = Shard{ID: c.ids.id(kind, index, i), Hash: sha256.Sum256(d), Data: d}
	}
	return seg
}

// open verifies the offered shards (nil = not fetched) against hashes, in
// order until K are good, rebuilds the sealed segment from those K (data
// shards first, so nothing to rebuild when they are all good) and opens it. It returns
// the SegmentSize plaintext bytes and the positions of the offered shards
// it refused for a wrong length or hash. It never modifies shards.
func (c *codec) open(kind Kind, index uint64, last bool, shards [][]byte, hashes [][32]byte) ([]byte, []int, error) {
	S, n, k := c.p.SegmentSize, c.p.N(), c.p.K
	if len(shards) != n {
		return nil, nil, fmt.Errorf("shard: %s segment %d: %d shard slots offered, want %d", kind, index, len(shards), n)
	}
	good := make([][]byte, n)
	nGood, dataMissing := 0, false
	var bad []int
	for i, d := range shards {
		switch {
		case d == nil:
		case nGood == k:
			// Enough already: the rest are not used, so not hashed.
		case len(d) != c.ss || sha256.Sum256(d) != hashes[i]:
			bad = append(bad, i) // SPEC.md §4.6: Reed-Solomon does not verify, so we do
		default:
			good[i] = d
			nGood++
		}
		if good[i] == nil && i < k {
			dataMissing = true
		}
	}
	if nGood < k {
		return nil, bad, &ShardsError{Kind: kind, Index: index, Good: nGood, Bad: len(bad), Need: k}
	}
	if dataMissing {
		if err := c.rs.ReconstructData(good); err != nil {
			return nil, bad, fmt.Errorf("shard: %s segment %d: reed-solomon: %w", kind, index, err)
		}
	}
	sealed := make([]byte, k*c.ss)
	for i := 0; i < k; i++ {
		copy(sealed[i*c.ss:], good[i])
	}
	for _, b := range sealed[S+TagSize:] {
		if b != 0 {
			return nil, bad, fmt.Errorf("%w: %s segment %d: nonzero shard padding", ErrTampered, kind, index)
		}
	}
	pt, err := c.keys.aead(kind).Open(sealed[:0], segmentNonce(index, last), sealed[:S+TagSize], nil)
	if err != nil {
		// Every shard matched its hash, so the manifest itself lists a
		// segment that is not this one: sealed elsewhere, reordered, or for
		// another position of the last flag (SPEC.md §4.2).
		return nil, bad, fmt.Errorf("%w: %s segment %d failed authentication", ErrTampered, kind, index)
	}
	return pt, bad, nil
}
