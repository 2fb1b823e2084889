package shard

import (
	"fmt"
	"math/bits"
)

// Sizes and limits (SPEC.md §2).
const (
	// TagSize is the AES-GCM tag that ends every sealed segment.
	TagSize = 16
	// NonceSize is the AES-GCM nonce (SPEC.md §4.2).
	NonceSize = 12
	// HashSize is the size of a shard hash, a shard ID and the root.
	HashSize = 32

	// MinSegmentSize is the smallest segment: below it the head (§6) cannot
	// list even one manifest segment's shard hashes for common codes.
	MinSegmentSize = 1 << 12
	// DefaultSegmentSize was chosen by measurement (SPEC.md §2.1).
	DefaultSegmentSize = 1 << 20
	// MaxSegmentSize bounds what a decoder must hold per segment (G9), and
	// keeps MaxShardSize within what shard/store accepts (4 MiB + 4 KiB).
	MaxSegmentSize = 1 << 22

	// MaxShards is Reed-Solomon's limit over GF(2^8): k + m ≤ 256.
	MaxShards = 256
	// MaxShardSize is the largest shard any valid Params produce (k = 1 at
	// MaxSegmentSize); storage relays may refuse anything longer.
	MaxShardSize = MaxSegmentSize + TagSize

	headHeaderSize = 20 // SPEC.md §6
)

// Params are a share's erasure code and segment size. They travel in the link
// (SPEC.md §3) and are repeated, authenticated, in the head and the manifest.
type Params struct {
	K           int // data shards per segment: any K of the K+M rebuild it
	M           int // parity shards per segment: how many may be lost
	SegmentSize int // plaintext bytes per segment, a power of two
}

var (
	// TestnetParams fit a 6-relay testnet: 5 storage relays, each holding one
	// shard of every segment, any 2 of them may be lost (1.67x storage).
	TestnetParams = Params{K: 3, M: 2, SegmentSize: DefaultSegmentSize}
	// DefaultParams are for a production network of at least 15 storage
	// relays: any 5 of the 15 relays holding a segment may be lost, for 1.5x
	// storage (SPEC.md §2.2).
	DefaultParams = Params{K: 10, M: 5, SegmentSize: DefaultSegmentSize}
)

// N is the number of shards per segment, K+M.
func (p Params) N() int { return p.K + p.M }

// ShardSize is the size of every shard of a share: ceil((SegmentSize+16)/K).
func (p Params) ShardSize() int { return (p.SegmentSize + TagSize + p.K - 1) / p.K }

// HeadReplicas is how many copies of the head are stored: M+1, so the head
// survives the loss of M relays like every segment does (SPEC.md §6).
func (p Params) HeadReplicas() int { return p.M + 1 }

// sizeCode is log2(SegmentSize), the link's encoding of it.
func (p Params) sizeCode() byte { return byte(bits.TrailingZeros(uint(p.SegmentSize))) }

func paramsFromCode(k, m, code byte) Params {
	p := Params{K: int(k), M: int(m)}
	if code < 63 {
		p.SegmentSize = 1 << code
	}
	return p
}

// Validate reports whether p can make a share.
func (p Params) Validate() error {
	switch {
	case p.K < 1 || p.M < 1:
		return fmt.Errorf("shard: params: k=%d m=%d: both must be at least 1", p.K, p.M)
	case p.K+p.M > MaxShards:
		return fmt.Errorf("shard: params: k+m=%d: at most %d shards per segment", p.K+p.M, MaxShards)
	case p.SegmentSize < MinSegmentSize || p.SegmentSize > MaxSegmentSize || p.SegmentSize&(p.SegmentSize-1) != 0:
		return fmt.Errorf("shard: params: segment size %d: must be a power of two from %d to %d",
			p.SegmentSize, MinSegmentSize, MaxSegmentSize)
	case p.MaxFileSize() == 0:
		return fmt.Errorf("shard: params: segment size %d is too small for k=%d m=%d: the head cannot list one manifest segment; use a larger segment",
			p.SegmentSize, p.K, p.M)
	}
	return nil
}

// maxManifestSegments is how many manifest segments the head can list.
func (p Params) maxManifestSegments() int64 {
	room := p.ShardSize() - TagSize - headHeaderSize
	if room < 0 {
		return 0
	}
	return int64(room / HashSize / p.N())
}

// MaxFileSize is the largest file a share with these params can hold: the
// head lists at most maxManifestSegments manifest segments (SPEC.md §6). It is
// about 465 GiB for DefaultParams and 0 for unusable params.
func (p Params) MaxFileSize() int64 { return p.maxFileSize(manifestHeaderSize) }

// maxFileSize is MaxFileSize for a manifest header of hdr bytes: the
// version-1 header is shorter (SPEC.md §5.1).
func (p Params) maxFileSize(hdr int) int64 {
	room := p.maxManifestSegments()*int64(p.SegmentSize) - int64(hdr)
	if room <= 0 {
		return 0
	}
	return room / int64(HashSize*p.N()) * int64(p.SegmentSize)
}

// Segments is the number of data segments of a file of size bytes: at least
// one, since a 0-byte file still has one padded segment.
func (p Params) Segments(size int64) int64 {
	if size <= 0 {
		return 1
	}
	return (size + int64(p.SegmentSize) - 1) / int64(p.SegmentSize)
}

// manifestSize is the byte length of the manifest of a file of size bytes.
func (p Params) manifestSize(size int64) int64 {
	return manifestHeaderSize + p.Segments(size)*int64(p.N()*HashSize)
}

// ManifestSegments is the number of manifest segments of the share of a
// file of size bytes (SPEC.md §5.2).
func (p Params) ManifestSegments(size int64) int64 {
	return (p.manifestSize(size) + int64(p.SegmentSize) - 1) / int64(p.SegmentSize)
}

// StoredSize is the number of bytes all of a share's shards take on the
// relays, the data's, the manifest's and the head replicas': the network cost
// of sharing a file of size bytes.
func (p Params) StoredSize(size int64) int64 {
	shards := (p.Segments(size)+p.ManifestSegments(size))*int64(p.N()) + int64(p.HeadReplicas())
	return shards * int64(p.ShardSize())
}
