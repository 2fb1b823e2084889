package directory

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// diffPair returns a base document and the target a seed signs a minute
// later: one relay republished, one gone, one new, one with new flags and
// weight, the rest unchanged.
func diffPair(t testing.TB) (base, target *Consensus) {
	t.Helper()
	seed := testIdentity(t, "diff seed")
	rs := make([]relay, 6)
	for i := range rs {
		rs[i] = newRelay(t, string(rune('a'+i)))
	}
	var old []Entry
	for _, r := range rs[:5] {
		old = append(old, Entry{Flags: running, Weight: 100, Descriptor: r.d})
	}
	base = newConsensus(t, seed, old...)

	again := newDescriptor(t, rs[1].id, "b")
	again.Sequence = 2
	signed(t, rs[1].id, again)
	next := []Entry{
		{Flags: running, Weight: 100, Descriptor: rs[0].d},
		{Flags: running, Weight: 100, Descriptor: again},                          // republished
		{Flags: running | FlagGuard | FlagStable, Weight: 7, Descriptor: rs[3].d}, // new flags and weight; rs[2] gone
		{Flags: running, Weight: 100, Descriptor: rs[4].d},
		{Flags: running, Weight: 50, Descriptor: rs[5].d}, // new
	}
	target = &Consensus{ValidAfter: t0.Add(time.Minute), FreshUntil: t0.Add(2 * time.Minute),
		ValidUntil: t0.Add(time.Minute + DefaultConsensusLifetime), Relays: next}
	if _, err := target.Sign(seed); err != nil {
		t.Fatal(err)
	}
	return base, target
}

func TestDiffRoundTrip(t *testing.T) {
	base, target := diffPair(t)
	d := MakeDiff(NewDiffBase(base, nil), target)
	literal := 0
	for _, op := range d.Ops {
		if op.Descriptor != nil {
			literal++
		}
	}
	if literal != 2 {
		t.Errorf("%d descriptors in full, want 2 (the republished and the new relay)", literal)
	}
	enc, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) != d.Len() {
		t.Errorf("Len %d, encoding %d bytes", d.Len(), len(enc))
	}
	if len(enc) >= len(target.Bytes()) {
		t.Errorf("diff of %d bytes, the document %d", len(enc), len(target.Bytes()))
	}
	p, err := ParseDiff(enc)
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.Marshal()
	if err != nil || !bytes.Equal(again, enc) {
		t.Fatalf("re-marshal differs (%v)", err)
	}
	got, err := p.Apply(base)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), target.Bytes()) || got.Digest() != target.Digest() {
		t.Fatal("the document made is not the target byte for byte")
	}
}

// A base from another seed works as well: seeds list the same
// descriptors, so a client that has one seed's new document fetches the
// others' as flags and weights.
func TestDiffFromAnotherSeed(t *testing.T) {
	base, target := diffPair(t)
	other := &Consensus{ValidAfter: target.ValidAfter, FreshUntil: target.FreshUntil,
		ValidUntil: target.ValidUntil, Relays: target.Relays}
	if _, err := other.Sign(testIdentity(t, "other seed")); err != nil {
		t.Fatal(err)
	}
	d := MakeDiff(NewDiffBase(target, nil), other)
	for i, op := range d.Ops {
		if op.Descriptor != nil {
			t.Errorf("op %d carries a descriptor the base lists", i+1)
		}
	}
	if want := diffFixedLen + diffOpHeader*len(other.Relays); d.Len() != want {
		t.Errorf("diff of %d bytes, want %d", d.Len(), want)
	}
	got, err := d.Apply(target)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), other.Bytes()) {
		t.Fatal("the document made is not the other seed's")
	}
	if _, err := d.Apply(base); !errors.Is(err, ErrMismatch) {
		t.Errorf("applied to a document it is not for: %v, want ErrMismatch", err)
	}
}

// TestDiffApplyRefuses: whatever a cache sends, the client gets the
// target byte for byte, signed by its seed, or an error.
func TestDiffApplyRefuses(t *testing.T) {
	base, target := diffPair(t)
	d := MakeDiff(NewDiffBase(base, nil), target)
	mutate := func(f func(*Diff)) *Diff {
		c := *d
		c.Ops = append([]DiffOp(nil), d.Ops...)
		f(&c)
		return &c
	}
	for _, tc := range []struct {
		name string
		diff *Diff
		want error
	}{
		{"a weight changed", mutate(func(c *Diff) { c.Ops[0].Weight++ }), ErrMismatch},
		{"a copy of the wrong entry", mutate(func(c *Diff) {
			// The first op copies the base's second entry; the others
			// carry their descriptors in full.
			c.Ops[0] = DiffOp{Flags: c.Ops[0].Flags, Weight: c.Ops[0].Weight, Skip: 1}
			for k := 1; k < len(c.Ops); k++ {
				c.Ops[k].Skip, c.Ops[k].Descriptor = 0, target.Relays[k].Descriptor.raw
			}
		}), ErrMismatch},
		{"the cursor past the base", mutate(func(c *Diff) { c.Ops[len(c.Ops)-1].Skip = 9 }), ErrMalformed},
		{"a copy past the base", mutate(func(c *Diff) { c.Ops[0] = DiffOp{Skip: 5} }), ErrMalformed},
		// The digest matches what is made, but the seed did not sign it:
		// the digest check alone would take it.
		{"a weight changed, digest to match", mutate(func(c *Diff) {
			c.Ops[0].Weight++
			c.Target = sha256.Sum256(made(t, c, base))
		}), ErrBadSignature},
	} {
		_, err := tc.diff.Apply(base)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// made is what applying d to base makes, unchecked.
func made(t testing.TB, d *Diff, base *Consensus) []byte {
	t.Helper()
	out := append([]byte(nil), d.Header[:]...)
	cur := 0
	for _, op := range d.Ops {
		cur += int(op.Skip)
		desc := op.Descriptor
		if desc == nil {
			desc = base.Relays[cur].Descriptor.raw
			cur++
		}
		out = binary.BigEndian.AppendUint16(out, uint16(op.Flags))
		out = binary.BigEndian.AppendUint32(out, op.Weight)
		out = binary.BigEndian.AppendUint16(out, uint16(len(desc)))
		out = append(out, desc...)
	}
	return append(out, d.Signature[:]...)
}

func TestParseDiffRefuses(t *testing.T) {
	base, target := diffPair(t)
	enc, err := MakeDiff(NewDiffBase(base, nil), target).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(enc) {
		if _, err := ParseDiff(enc[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: parsed", n, len(enc))
		}
	}
	bad := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(enc)) }
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"trailing byte", bad(func(b []byte) []byte { return append(b, 0) }), ErrMalformed},
		{"version 2", bad(func(b []byte) []byte { b[0] = 2; return b }), ErrMalformed},
		{"target version 1", bad(func(b []byte) []byte { b[65] = 1; return b }), ErrMalformed},
		{"base = target", bad(func(b []byte) []byte { copy(b[1:33], b[33:65]); return b }), ErrMalformed},
		{"one relay more", bad(func(b []byte) []byte { b[125]++; return b }), ErrMalformed},
		{"too large", make([]byte, MaxDiffLen+1), ErrTooLarge},
	} {
		if _, err := ParseDiff(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
