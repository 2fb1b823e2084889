package store

import (
	"testing"
)

// Put's cost is dominated by the two fsyncs (file, then directory) that make
// a shard durable before Put returns (G10): on a laptop NVMe each is
// around a millisecond, so expect tens to a few hundred MB/s at 1 MiB
// depending on the disk; tmpfs shows the copy-and-hash cost alone.
func BenchmarkPut1MiB(b *testing.B) {
	s := openTest(b, b.TempDir(), newClock(), 1<<40)
	data := make([]byte, 1<<20)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := s.Put(testID(i), data, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// Get reads the file and checks its SHA-256; no fsync.
func BenchmarkGet1MiB(b *testing.B) {
	s := openTest(b, b.TempDir(), newClock(), 1<<40)
	data := make([]byte, 1<<20)
	const n = 16
	for i := range n {
		if err := s.Put(testID(i), data, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Get(testID(i % n)); err != nil {
			b.Fatal(err)
		}
	}
}
