package directory

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkConsensusScale signs a consensus of N middle relays with
// varied addresses, nicknames, bandwidths and publication times (what a
// seed signs), and parses it as a client does. Metrics: bytes (the
// document), gzip_B (as dirserve serves it, default gzip level), and the
// parse time (ns/op; every descriptor's two signatures are checked).
// N = 7000 is about Tor's network. A client's directory bytes an hour are
// gzip_B × pinned seeds × fetches an hour (README, Performance).
func BenchmarkConsensusScale(b *testing.B) {
	for _, n := range []int{100, 300, 1000, 7000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			enc := scaleConsensus(b, n)
			var zb bytes.Buffer
			zw := gzip.NewWriter(&zb)
			if _, err := zw.Write(enc); err != nil {
				b.Fatal(err)
			}
			if err := zw.Close(); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(enc)))
			for b.Loop() {
				if _, err := ParseConsensus(enc); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(enc)), "bytes")
			b.ReportMetric(float64(zb.Len()), "gzip_B")
		})
	}
}

// scaleConsensus returns a signed document of n relays. The relays differ
// in what real relays differ in, so that gzip gets no unfair repetition:
// keys, addresses, nicknames, bandwidths, weights, sequence numbers and
// publication times.
func scaleConsensus(b *testing.B, n int) []byte {
	b.Helper()
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	seed := testIdentity(b, "scale seed")
	es := make([]Entry, n)
	for i := range es {
		label := fmt.Sprint("scale ", i)
		id := testIdentity(b, label)
		d := newDescriptor(b, id, label)
		d.Nickname = scaleNickname(rng)
		ip := netip.AddrFrom4([4]byte{byte(1 + rng.IntN(223)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
		d.ORAddr = netip.AddrPortFrom(ip, uint16(1024+rng.IntN(64000)))
		d.GossipAddr = netip.AddrPortFrom(ip, uint16(1024+rng.IntN(64000)))
		d.Bandwidth = uint64(100<<10 + rng.IntN(100<<20))
		// Within the hour since the test onion certificate was created.
		d.Published = t0.Add(-time.Duration(rng.Int64N(int64(time.Hour))))
		d.Expires = d.Published.Add(DefaultDescriptorLifetime)
		d.Published = d.Published.Truncate(time.Second)
		d.Expires = d.Expires.Truncate(time.Second)
		d.Sequence = 1 + uint64(rng.IntN(500))
		if _, err := d.Sign(id); err != nil {
			b.Fatal(err)
		}
		es[i] = Entry{Flags: running, Weight: uint32(rng.IntN(100000)), Descriptor: d}
	}
	return newConsensus(b, seed, es...).Bytes()
}

func scaleNickname(rng *rand.Rand) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	nick := make([]byte, 4+rng.IntN(12))
	for i := range nick {
		nick[i] = letters[rng.IntN(len(letters))]
	}
	return string(nick)
}
