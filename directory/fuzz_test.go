package directory

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// Every fuzz target demands that whatever parses re-marshals to identical
// bytes (age FuzzMalleability): the encodings are canonical, so no two byte
// strings mean the same document. Seeds are commented valid and invalid
// documents. Signatures make random mutations fail early; the field rules
// behind them are covered by the forged, well-signed documents of the unit
// tests.

func FuzzParseDescriptor(f *testing.F) {
	id := testIdentity(f, "a")
	middle := signed(f, id, newDescriptor(f, id, "a"))
	exit := signed(f, id, exitDescriptor(f, id, "a"))
	dual := newDescriptor(f, id, "a")
	dual.ORAddrV6 = netip.MustParseAddrPort("[2001:db8::7]:9001")
	f.Add(middle)                           // valid: middle relay, IPv4
	f.Add(exit)                             // valid: exit and storage, IPv6, family, contact
	f.Add(signed(f, id, dual))              // valid: version 2, an IPv4 and an IPv6 OR address
	f.Add(middle[:len(middle)-1])           // invalid: truncated signature
	f.Add(append(bytes.Clone(middle), 0))   // invalid: trailing byte
	f.Add(append([]byte{2}, middle[1:]...)) // invalid: version 2 without its IPv6 address
	f.Add(make([]byte, minDescriptorLen))   // invalid: all zeros
	bad := newDescriptor(f, id, "a")
	bad.Nickname = "bad-name"
	f.Add(forgeDescriptor(id, bad)) // invalid: well signed, bad nickname
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDescriptorAnyTime(b)
		if err != nil {
			return
		}
		out, err := d.Marshal()
		if err != nil {
			t.Fatalf("parsed %x but cannot marshal it: %v", b, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-marshal differs:\n in  %x\n out %x", b, out)
		}
	})
}

func FuzzParsePointer(f *testing.F) {
	a := newRelay(f, "a")
	_, p := signedPointer(f, a)
	f.Add(p) // valid: node-ID name, IPv4
	six := a.d.Pointer()
	six.GossipAddr = a.d.GossipAddr
	six.GossipName = "n"
	b, err := six.Sign(a.id)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)                                   // valid: one-byte name
	f.Add(p[:len(p)-1])                        // invalid: truncated
	f.Add(append(bytes.Clone(p), 0))           // invalid: trailing byte
	f.Add(make([]byte, minPointerLen))         // invalid: all zeros
	f.Add(make([]byte, MemberlistMetaMaxSize)) // invalid: too large
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePointer(b)
		if err != nil {
			return
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("parsed %x but cannot marshal it: %v", b, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-marshal differs:\n in  %x\n out %x", b, out)
		}
	})
}

func FuzzParseConsensus(f *testing.F) {
	seed := testIdentity(f, "seed")
	rs := testRelays(f, 2, true)
	es := entries(rs, running)
	es[2].Flags |= FlagExit
	full := newConsensus(f, seed, es...).Bytes()
	empty := newConsensus(f, seed).Bytes()
	f.Add(full)                          // valid: three relays, one exit
	f.Add(empty)                         // valid: no relays
	f.Add(full[:len(full)-1])            // invalid: truncated
	f.Add(append(bytes.Clone(empty), 0)) // invalid: trailing byte
	f.Add(make([]byte, minConsensusLen)) // invalid: all zeros
	unsorted := forgeConsensus(seed, &Consensus{ValidAfter: t0, FreshUntil: t0.Add(time.Minute),
		ValidUntil: t0.Add(time.Hour), Relays: []Entry{es[1], es[0]}})
	f.Add(unsorted) // invalid: well signed, entries descending (Sign sorted es in place)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConsensus(b)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("parsed %x but cannot marshal it: %v", b, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-marshal differs:\n in  %x\n out %x", b, out)
		}
		for i, e := range c.Relays {
			d, err := e.Descriptor.Marshal()
			if err != nil || !bytes.Equal(d, e.Descriptor.Bytes()) {
				t.Fatalf("entry %d: descriptor re-marshal differs: %v", i, err)
			}
		}
	})
}

// FuzzParseDiff also applies what parses to a fixed base: whatever a
// cache sends, Apply returns the target it names, byte for byte, or an
// error, and never panics.
func FuzzParseDiff(f *testing.F) {
	base, target := diffPair(f)
	d := MakeDiff(NewDiffBase(base, nil), target)
	enc, err := d.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)                         // valid: two descriptors in full, three copied
	f.Add(enc[:len(enc)-1])            // invalid: truncated signature
	f.Add(append(bytes.Clone(enc), 0)) // invalid: trailing byte
	f.Add(make([]byte, diffFixedLen))  // invalid: all zeros
	same, err := MakeDiff(NewDiffBase(base, nil), base).Marshal()
	if err == nil {
		f.Fatal("a diff from a document to itself marshals")
	}
	_ = same
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDiff(b)
		if err != nil {
			return
		}
		out, err := d.Marshal()
		if err != nil {
			t.Fatalf("parsed %x but cannot marshal it: %v", b, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-marshal differs:\n in  %x\n out %x", b, out)
		}
		c, err := d.Apply(base)
		if err != nil {
			return
		}
		if c.Digest() != d.Target {
			t.Fatalf("applied, but made digest %x, not the target %x", c.Digest(), d.Target)
		}
	})
}
