package directory

import (
	"fmt"
	"testing"
)

func BenchmarkParseDescriptor(b *testing.B) {
	id := testIdentity(b, "a")
	enc := signed(b, id, exitDescriptor(b, id, "a"))
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseDescriptor(enc, t0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseConsensus100(b *testing.B) {
	seed := testIdentity(b, "seed")
	es := make([]Entry, 100)
	for i := range es {
		r := newRelay(b, fmt.Sprint(i))
		es[i] = Entry{Flags: running, Descriptor: r.d}
	}
	enc := newConsensus(b, seed, es...).Bytes()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseConsensus(enc); err != nil {
			b.Fatal(err)
		}
	}
}
