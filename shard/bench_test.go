package shard

import (
	"fmt"
	"io"
	"testing"
)

const benchSize = 64 << 20

// patternReader yields size bytes of a cheap pattern without holding them.
type patternReader struct{ left int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.left)
	for i := range p[:n] {
		p[i] = byte(i*7 + int(r.left))
	}
	r.left -= n
	return int(n), nil
}

func encodeAll(b *testing.B, p Params, size int64, keep func(*Segment)) *Link {
	e, err := NewEncoder(&patternReader{size}, size, p, testRand(1))
	if err != nil {
		b.Fatal(err)
	}
	for {
		seg, err := e.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		if keep != nil {
			keep(seg)
		}
	}
	l, err := e.Link()
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkEncode is seal + Reed-Solomon + hash + IDs of a 64 MiB file,
// streaming, shards dropped as they come (as an uploader would after sending).
func BenchmarkEncode(b *testing.B) {
	for _, p := range []Params{DefaultParams, TestnetParams} {
		b.Run(fmt.Sprintf("k%d-m%d", p.K, p.M), func(b *testing.B) {
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				encodeAll(b, p, benchSize, nil)
			}
		})
	}
}

// BenchmarkDecode decodes a 64 MiB share: with every shard, and with M data
// shards of every segment lost (Reed-Solomon reconstruction on each).
func BenchmarkDecode(b *testing.B) {
	for _, lost := range []int{0, DefaultParams.M} {
		b.Run(fmt.Sprintf("lost%d", lost), func(b *testing.B) {
			store := map[[32]byte][]byte{}
			l := encodeAll(b, DefaultParams, benchSize, func(s *Segment) {
				for i, sh := range s.Shards {
					if s.Kind != KindData || i >= lost {
						store[sh.ID] = sh.Data
					}
				}
			})
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				if err := Decode(l, func(id [32]byte) []byte { return store[id] }, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSegmentSize compares segment sizes (SPEC.md §2.1): throughput of
// encode (seal + RS + hash) and decode, plus the bytes stored for a 1-byte
// and a 100 KB file, with DefaultParams' code.
func BenchmarkSegmentSize(b *testing.B) {
	for _, S := range []int{256 << 10, 1 << 20, 4 << 20} {
		p := Params{K: DefaultParams.K, M: DefaultParams.M, SegmentSize: S}
		b.Run(fmt.Sprintf("encode-%dKiB", S>>10), func(b *testing.B) {
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				encodeAll(b, p, benchSize, nil)
			}
			b.ReportMetric(float64(p.StoredSize(1)), "stored-B/1B-file")
			b.ReportMetric(float64(p.StoredSize(100e3)), "stored-B/100KB-file")
			b.ReportMetric(float64(p.StoredSize(100e6))/100e6, "x-stored/100MB-file")
			b.ReportMetric(float64(p.N())*float64(p.Segments(100e6)+1)+float64(p.HeadReplicas()), "shards/100MB-file")
		})
		b.Run(fmt.Sprintf("decode-%dKiB", S>>10), func(b *testing.B) {
			store := map[[32]byte][]byte{}
			l := encodeAll(b, p, benchSize, func(s *Segment) {
				for _, sh := range s.Shards {
					store[sh.ID] = sh.Data
				}
			})
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				if err := Decode(l, func(id [32]byte) []byte { return store[id] }, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
