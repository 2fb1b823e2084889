package directory

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testRelays returns n middle relays and, if exit, one exit+storage relay
// as the last.
func testRelays(t testing.TB, n int, exit bool) []relay {
	t.Helper()
	rs := make([]relay, n)
	for i := range rs {
		rs[i] = newRelay(t, fmt.Sprint(i))
	}
	if exit {
		id := testIdentity(t, "exit")
		d := exitDescriptor(t, id, "exit")
		signed(t, id, d)
		rs = append(rs, relay{id, d})
	}
	return rs
}

func entries(rs []relay, f Flags) []Entry {
	es := make([]Entry, len(rs))
	for i, r := range rs {
		es[i] = Entry{Flags: f, Descriptor: r.d}
	}
	return es
}

func TestConsensusRoundTrip(t *testing.T) {
	seed := testIdentity(t, "seed")
	rs := testRelays(t, 4, true)
	es := entries(rs, running|FlagStable)
	es[len(es)-1].Flags |= FlagExit | FlagStorage | FlagGuard
	c := newConsensus(t, seed, es...)
	b := c.Bytes()
	got, err := ParseConsensus(b)
	if err != nil {
		t.Fatal(err)
	}
	again, err := got.Marshal()
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("re-marshal: %v", err)
	}
	if got.Digest() != sha256.Sum256(b) || got.Digest() != c.Digest() {
		t.Fatal("Digest differs")
	}
	if got.SeedID() != seed.ID() || len(got.Relays) != len(rs) {
		t.Fatalf("seed %s, %d relays", got.SeedID(), len(got.Relays))
	}
	// Sign sorted the entries; parse gives the same order, flags and bytes.
	for i, e := range got.Relays {
		if e.Flags != c.Relays[i].Flags || e.Descriptor.Digest() != c.Relays[i].Descriptor.Digest() {
			t.Fatalf("entry %d differs", i)
		}
		if i > 0 {
			a, b := got.Relays[i-1].Descriptor.NodeID(), e.Descriptor.NodeID()
			if bytes.Compare(a[:], b[:]) >= 0 {
				t.Fatal("entries not ascending")
			}
		}
	}
	if !got.ValidAfter.Equal(c.ValidAfter) || !got.FreshUntil.Equal(c.FreshUntil) || !got.ValidUntil.Equal(c.ValidUntil) {
		t.Fatal("times differ")
	}
	if !reflect.DeepEqual(got.SeedKey, c.SeedKey) || got.Signature != c.Signature {
		t.Fatal("key or signature differs")
	}

	empty := newConsensus(t, seed)
	if len(empty.Bytes()) != minConsensusLen {
		t.Fatalf("empty consensus %d bytes, want %d", len(empty.Bytes()), minConsensusLen)
	}
	if _, err := ParseConsensus(empty.Bytes()); err != nil {
		t.Fatal(err)
	}
}

func TestConsensusTruncated(t *testing.T) {
	seed := testIdentity(t, "seed")
	b := newConsensus(t, seed, entries(testRelays(t, 2, false), running)...).Bytes()
	for n := range len(b) {
		if _, err := ParseConsensus(b[:n]); err == nil {
			t.Fatalf("first %d of %d bytes accepted", n, len(b))
		}
	}
	if _, err := ParseConsensus(append(bytes.Clone(b), 0)); err == nil {
		t.Fatal("one extra byte accepted")
	}
}

// TestConsensusTruncatedSigned re-signs every truncation, so the structure
// itself, not the seed's signature, must refuse it (the parser may read the
// new signature as the end of a descriptor, whose own signature then fails).
func TestConsensusTruncatedSigned(t *testing.T) {
	seed := testIdentity(t, "seed")
	body := newConsensus(t, seed, entries(testRelays(t, 2, false), running)...).Bytes()
	body = body[:len(body)-64]
	for n := 0; n < len(body); n++ {
		b := append(bytes.Clone(body[:n]), seed.Sign(ConsensusLabel, body[:n])...)
		if _, err := ParseConsensus(b); err == nil || errors.Is(err, ErrTooLarge) {
			t.Fatalf("re-signed first %d of %d bytes: %v", n, len(body), err)
		}
	}
	extra := append(bytes.Clone(body), 0)
	if _, err := ParseConsensus(append(extra, seed.Sign(ConsensusLabel, extra)...)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("re-signed extra byte: %v, want ErrMalformed", err)
	}
}

func TestConsensusEveryByteSigned(t *testing.T) {
	seed := testIdentity(t, "seed")
	b := newConsensus(t, seed, entries(testRelays(t, 2, false), running)...).Bytes()
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		if _, err := ParseConsensus(c); err == nil {
			t.Fatalf("byte %d flipped, accepted", i)
		}
	}
}

func TestConsensusRules(t *testing.T) {
	seed := testIdentity(t, "seed")
	rs := testRelays(t, 2, true)
	sorted := newConsensus(t, seed, entries(rs, running)...).Relays
	for name, tc := range map[string]struct {
		c    Consensus
		want error
	}{
		"unsorted":          {Consensus{Relays: []Entry{sorted[1], sorted[0]}}, ErrMalformed},
		"duplicate":         {Consensus{Relays: []Entry{sorted[0], sorted[0]}}, ErrMalformed},
		"unknown flag":      {Consensus{Relays: []Entry{{Flags: 1 << 6, Descriptor: rs[0].d}}}, ErrMalformed},
		"exit flag":         {Consensus{Relays: []Entry{{Flags: FlagExit, Descriptor: rs[0].d}}}, ErrMalformed},
		"storage flag":      {Consensus{Relays: []Entry{{Flags: FlagStorage, Descriptor: rs[0].d}}}, ErrMalformed},
		"fresh after valid": {Consensus{FreshUntil: t0.Add(2 * time.Hour), ValidUntil: t0.Add(time.Hour)}, ErrMalformed},
		"zero freshness":    {Consensus{FreshUntil: t0, ValidUntil: t0.Add(time.Hour)}, ErrMalformed},
		"lifetime too long": {Consensus{FreshUntil: t0.Add(time.Minute), ValidUntil: t0.Add(MaxConsensusLifetime + time.Second)}, ErrMalformed},
	} {
		c := tc.c
		c.ValidAfter = t0
		if c.FreshUntil.IsZero() {
			c.FreshUntil, c.ValidUntil = t0.Add(time.Minute), t0.Add(time.Hour)
		}
		if _, err := ParseConsensus(forgeConsensus(seed, &c)); !errors.Is(err, tc.want) {
			t.Errorf("%s: parse: %v, want %v", name, err, tc.want)
		}
		if name == "unsorted" {
			continue // Sign sorts
		}
		if _, err := c.Sign(seed); !errors.Is(err, tc.want) {
			t.Errorf("%s: Sign: %v, want %v", name, err, tc.want)
		}
	}
	// The exit may carry Exit and Storage.
	c := Consensus{ValidAfter: t0, FreshUntil: t0.Add(time.Minute), ValidUntil: t0.Add(time.Hour),
		Relays: []Entry{{Flags: FlagExit | FlagStorage, Descriptor: rs[2].d}}}
	if _, err := ParseConsensus(forgeConsensus(seed, &c)); err != nil {
		t.Fatal(err)
	}
	// Unsigned descriptors cannot be listed.
	d := newDescriptor(t, rs[0].id, "0")
	c.Relays = []Entry{{Descriptor: d}}
	if _, err := c.Sign(seed); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unsigned descriptor: %v", err)
	}
}

func TestConsensusBadDescriptorInside(t *testing.T) {
	seed := testIdentity(t, "seed")
	rs := testRelays(t, 1, false)
	c := &Consensus{ValidAfter: t0, FreshUntil: t0.Add(time.Minute), ValidUntil: t0.Add(time.Hour), Relays: entries(rs, running)}
	body := forgeConsensus(seed, c)
	body = body[:len(body)-64]
	body[len(body)-1] ^= 1 // last byte of the descriptor's signature
	b := append(body, seed.Sign(ConsensusLabel, body)...)
	if _, err := ParseConsensus(b); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "entry 1") {
		t.Fatalf("forged descriptor in a signed consensus: %v, want ErrBadSignature naming entry 1", err)
	}
}

func TestConsensusLimits(t *testing.T) {
	seed := testIdentity(t, "seed")
	if _, err := ParseConsensus(make([]byte, MaxConsensusLen+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize: %v, want ErrTooLarge", err)
	}
	body := newConsensus(t, seed).Bytes()
	body = body[:len(body)-64]
	binary.BigEndian.PutUint32(body[consensusHeader-4:], MaxRelays+1)
	b := append(body, seed.Sign(ConsensusLabel, body)...)
	if _, err := ParseConsensus(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("count %d: %v, want ErrMalformed", MaxRelays+1, err)
	}
	// A huge count with no entries is refused without a huge allocation.
	binary.BigEndian.PutUint32(body[consensusHeader-4:], MaxRelays)
	b = append(body, seed.Sign(ConsensusLabel, body)...)
	if n := testing.AllocsPerRun(5, func() { ParseConsensus(b) }); n > 20 {
		t.Fatalf("%v allocations for an empty document claiming %d relays", n, MaxRelays)
	}
}

func TestConsensusCheckTime(t *testing.T) {
	seed := testIdentity(t, "seed")
	c := newConsensus(t, seed)
	for _, tc := range []struct {
		now  time.Time
		want error
	}{
		{t0, nil},
		{t0.Add(-ClockSkew), nil},
		{t0.Add(-ClockSkew - time.Second), ErrFromFuture},
		{t0.Add(time.Hour), nil}, // stale but valid: clients refetch
		{c.ValidUntil, nil},
		{c.ValidUntil.Add(time.Second), ErrExpired},
	} {
		err := c.CheckTime(tc.now)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("at %s: %v, want %v", tc.now, err, tc.want)
		}
	}
}

func TestFlagsNames(t *testing.T) {
	f := FlagExit | FlagRunning | 1<<9
	if got := f.String(); got != "Exit Running 0x200" {
		t.Fatalf("String = %q", got)
	}
	if Flags(0).Names() != nil {
		t.Fatal("no flags should have no names")
	}
}
