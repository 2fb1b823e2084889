package directory

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"veil/onion/keys"
)

// BenchmarkConsensusScale signs a consensus of N middle relays with
// varied addresses, nicknames, bandwidths and publication times (what a
// seed signs), and parses it as a client does. Metrics: bytes (the
// document), gzip_B (as dirserve serves it, default gzip level), and the
// parse time (ns/op; every descriptor's two signatures are checked).
// N = 7000 is about Tor's network.
//
// It then simulates an hour (scaleHour) and signs the next documents of
// three seeds, and reports what a client pinning them downloads in that
// hour (SPEC.md §5.7.5): client_B/h_full, each seed's document whole
// (3 × gzip_B, before diffs), and client_B/h_diff: the first seed's
// document as a diff from the one the client held (diff_gz_B), the other
// two as diffs from that new document (xseed_gz_B). cache_B/h_diff is
// what a directory cache fetches from three seeds in an hour at one
// document a minute each, as diffs from the previous minute's (scaleMinute),
// against cache_B/h_full without them.
func BenchmarkConsensusScale(b *testing.B) {
	for _, n := range []int{100, 300, 1000, 7000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(uint64(n), 7))
			s := newScaleNet(b, rng, n)
			seeds := []*keys.Identity{testIdentity(b, "scale seed"), testIdentity(b, "scale seed 2"), testIdentity(b, "scale seed 3")}
			held := s.sign(b, seeds[0], t0, rng)
			enc := held.Bytes()
			b.SetBytes(int64(len(enc)))
			for b.Loop() {
				if _, err := ParseConsensus(enc); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(enc)), "bytes")
			b.ReportMetric(float64(gzipLen(b, enc)), "gzip_B")

			// A minute: what a cache fetches from each seed.
			s.minute(b, rng)
			minute := s.sign(b, seeds[0], t0.Add(time.Minute), rng)
			minuteDiff := diffBytes(b, held, minute)
			b.ReportMetric(float64(3*60*gzipLen(b, minute.Bytes())), "cache_B/h_full")
			b.ReportMetric(float64(3*60*gzipLen(b, minuteDiff)), "cache_B/h_diff")

			// An hour: what a client fetches.
			s.hour(b, rng)
			at := t0.Add(time.Hour)
			next := make([]*Consensus, len(seeds))
			for i, seed := range seeds {
				next[i] = s.sign(b, seed, at, rng)
			}
			own := diffBytes(b, held, next[0])
			xseed := diffBytes(b, next[0], next[1])
			full := 3 * gzipLen(b, next[0].Bytes())
			after := gzipLen(b, own) + 2*gzipLen(b, xseed)
			b.ReportMetric(float64(len(own)), "diff_B")
			b.ReportMetric(float64(gzipLen(b, own)), "diff_gz_B")
			b.ReportMetric(float64(gzipLen(b, xseed)), "xseed_gz_B")
			b.ReportMetric(float64(full), "client_B/h_full")
			b.ReportMetric(float64(after), "client_B/h_diff")
		})
	}
}

// diffBytes makes the diff from base to target, checks that it makes the
// target byte for byte, and returns its encoding.
func diffBytes(b *testing.B, base, target *Consensus) []byte {
	b.Helper()
	d := MakeDiff(NewDiffBase(base, nil), target)
	enc, err := d.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	p, err := ParseDiff(enc)
	if err != nil {
		b.Fatal(err)
	}
	got, err := p.Apply(base)
	if err != nil {
		b.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), target.Bytes()) {
		b.Fatal("the diff does not make the target")
	}
	return enc
}

func gzipLen(b *testing.B, enc []byte) int {
	b.Helper()
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	if _, err := zw.Write(enc); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	return zb.Len()
}

// scaleNet is a simulated network: its relays with their keys. The
// relays differ in what real relays differ in, so that gzip gets no
// unfair repetition: keys, addresses, nicknames, bandwidths, weights,
// sequence numbers and publication times.
type scaleNet struct {
	ids    []*keys.Identity
	descs  []*Descriptor
	joined int // relays made so far, for labels
}

func newScaleNet(b *testing.B, rng *rand.Rand, n int) *scaleNet {
	b.Helper()
	s := &scaleNet{}
	for range n {
		s.join(b, rng)
	}
	return s
}

// join adds a new relay.
func (s *scaleNet) join(b *testing.B, rng *rand.Rand) {
	b.Helper()
	label := fmt.Sprint("scale ", s.joined)
	s.joined++
	id := testIdentity(b, label)
	d := newDescriptor(b, id, label)
	d.Nickname = scaleNickname(rng)
	ip := netip.AddrFrom4([4]byte{byte(1 + rng.IntN(223)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
	d.ORAddr = netip.AddrPortFrom(ip, uint16(1024+rng.IntN(64000)))
	d.GossipAddr = netip.AddrPortFrom(ip, uint16(1024+rng.IntN(64000)))
	d.Bandwidth = uint64(100<<10 + rng.IntN(100<<20))
	d.Sequence = 1 + uint64(rng.IntN(500))
	// Within the hour since the test onion certificate was created.
	s.publish(b, id, d, t0.Add(-time.Duration(rng.Int64N(int64(time.Hour)))))
	s.ids = append(s.ids, id)
	s.descs = append(s.descs, d)
}

// publish signs d as published at t.
func (s *scaleNet) publish(b *testing.B, id *keys.Identity, d *Descriptor, t time.Time) {
	b.Helper()
	d.Published = t.Truncate(time.Second)
	d.Expires = d.Published.Add(DefaultDescriptorLifetime)
	if _, err := d.Sign(id); err != nil {
		b.Fatal(err)
	}
}

// republish has relay i sign its next descriptor at t.
func (s *scaleNet) republish(b *testing.B, i int, t time.Time) {
	b.Helper()
	d := *s.descs[i]
	d.Sequence++
	s.publish(b, s.ids[i], &d, t)
	s.descs[i] = &d
}

// hour is an hour of the network: a relay republishes every 9 hours
// (SPEC.md §2.3), so one in nine does; 2 % leave and as many join.
func (s *scaleNet) hour(b *testing.B, rng *rand.Rand) {
	b.Helper()
	n := len(s.descs)
	for i := range s.descs {
		if rng.IntN(9) == 0 {
			s.republish(b, i, t0.Add(time.Hour-time.Duration(rng.Int64N(int64(time.Hour)))))
		}
	}
	churn := n / 50
	for range churn {
		i := rng.IntN(len(s.descs))
		s.ids = append(s.ids[:i], s.ids[i+1:]...)
		s.descs = append(s.descs[:i], s.descs[i+1:]...)
	}
	for range churn {
		s.join(b, rng)
	}
}

// minute is a minute of the network: one relay in 540 republishes.
func (s *scaleNet) minute(b *testing.B, rng *rand.Rand) {
	b.Helper()
	for i := range s.descs {
		if rng.IntN(9*60) == 0 {
			s.republish(b, i, t0.Add(time.Minute))
		}
	}
}

// sign returns seed's document of the network valid from at. Every seed
// measures every relay itself, so weights are drawn afresh: each is the
// median of the seed's last three measurements (SPEC.md §5.6), which
// moves with every measurement.
func (s *scaleNet) sign(b *testing.B, seed *keys.Identity, at time.Time, rng *rand.Rand) *Consensus {
	b.Helper()
	es := make([]Entry, len(s.descs))
	for i, d := range s.descs {
		es[i] = Entry{Flags: running, Weight: uint32(rng.IntN(100000)), Descriptor: d}
	}
	c := &Consensus{ValidAfter: at, FreshUntil: at.Add(time.Minute), ValidUntil: at.Add(DefaultConsensusLifetime), Relays: es}
	if _, err := c.Sign(seed); err != nil {
		b.Fatal(err)
	}
	return c
}
func scaleNickname(rng *rand.Rand) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	nick := make([]byte, 4+rng.IntN(12))
	for i := range nick {
		nick[i] = letters[rng.IntN(len(letters))]
	}
	return string(nick)
}
