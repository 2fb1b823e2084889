package directory

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// signedPointer returns the pointer to a's descriptor and its encoding.
func signedPointer(t testing.TB, a relay) (*Pointer, []byte) {
	t.Helper()
	p := a.d.Pointer()
	b, err := p.Sign(a.id)
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

func TestPointerRoundTrip(t *testing.T) {
	a := newRelay(t, "a")
	p, b := signedPointer(t, a)
	if len(b) != 197 {
		t.Fatalf("pointer with a node-ID name and IPv4 is %d bytes, SPEC.md says 197", len(b))
	}
	got, err := ParsePointer(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("parsed %+v, want %+v", got, p)
	}
	again, err := got.Marshal()
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("re-marshal: %v", err)
	}
	if err := got.Matches(a.d); err != nil {
		t.Fatal(err)
	}
	if got.NodeID() != a.id.ID() {
		t.Fatal("NodeID differs")
	}
}

func TestPointerMaxLen(t *testing.T) {
	a := newRelay(t, "a")
	p := a.d.Pointer()
	p.GossipName = strings.Repeat("n", MaxGossipNameLen)
	p.GossipAddr = netip.MustParseAddrPort("[2001:db8::1]:7946")
	b, err := p.Sign(a.id)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != MaxPointerLen || MaxPointerLen != 221 {
		t.Fatalf("largest pointer %d bytes, MaxPointerLen %d, SPEC.md says 221", len(b), MaxPointerLen)
	}
	if _, err := ParsePointer(b); err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePointer(append(b, 0)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte more: %v, want ErrTooLarge", err)
	}
	if _, err := ParsePointer(make([]byte, MemberlistMetaMaxSize)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("512 bytes: %v, want ErrTooLarge", err)
	}
	p.GossipName += "n"
	if _, err := p.Sign(a.id); !errors.Is(err, ErrMalformed) {
		t.Fatalf("65-byte name: %v, want ErrMalformed", err)
	}
}

func TestPointerTruncated(t *testing.T) {
	_, b := signedPointer(t, newRelay(t, "a"))
	for n := range len(b) {
		if _, err := ParsePointer(b[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("first %d of %d bytes: %v, want ErrMalformed", n, len(b), err)
		}
	}
	if _, err := ParsePointer(append(bytes.Clone(b), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("one extra byte: %v, want ErrMalformed", err)
	}
}

func TestPointerEveryByteSigned(t *testing.T) {
	_, b := signedPointer(t, newRelay(t, "a"))
	for i := range b {
		for _, x := range []byte{0x01, 0x80} {
			c := bytes.Clone(b)
			c[i] ^= x
			if _, err := ParsePointer(c); err == nil {
				t.Fatalf("byte %d ^ %#02x accepted", i, x)
			}
		}
	}
}

func TestPointerSignedByOther(t *testing.T) {
	a, b := newRelay(t, "a"), newRelay(t, "b")
	p := a.d.Pointer()
	enc, err := p.Sign(a.id)
	if err != nil {
		t.Fatal(err)
	}
	copy(enc[1:33], b.id.Public()) // claims b's identity with a's signature
	if _, err := ParsePointer(enc); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("identity swapped: %v, want ErrBadSignature", err)
	}
}

func TestPointerMatches(t *testing.T) {
	a, other := newRelay(t, "a"), newRelay(t, "b")
	p, _ := signedPointer(t, a)
	newer := newDescriptor(t, a.id, "a")
	newer.Sequence = 2
	signed(t, a.id, newer)
	moved := newDescriptor(t, a.id, "a")
	moved.GossipAddr = netip.MustParseAddrPort("192.0.2.99:7947")
	signed(t, a.id, moved)
	renamed := newDescriptor(t, a.id, "a")
	renamed.GossipName = "renamed"
	signed(t, a.id, renamed)
	contact := newDescriptor(t, a.id, "a")
	contact.Contact = "same sequence, other bytes"
	signed(t, a.id, contact)
	for name, d := range map[string]*Descriptor{
		"other relay":  other.d,
		"sequence":     newer,
		"gossip addr":  moved,
		"gossip name":  renamed,
		"other digest": contact,
	} {
		if err := p.Matches(d); !errors.Is(err, ErrMismatch) {
			t.Errorf("%s: %v, want ErrMismatch", name, err)
		}
	}
}

func TestPointerBinds(t *testing.T) {
	p, _ := signedPointer(t, newRelay(t, "a"))
	if err := p.Binds(p.GossipName, p.GossipAddr); err != nil {
		t.Fatal(err)
	}
	// memberlist hands out IPv4 addresses in 16-byte form.
	mapped := netip.AddrPortFrom(netip.AddrFrom16(p.GossipAddr.Addr().As16()), p.GossipAddr.Port())
	if err := p.Binds(p.GossipName, mapped); err != nil {
		t.Fatalf("IPv4-mapped form: %v", err)
	}
	if err := p.Binds("someone-else", p.GossipAddr); !errors.Is(err, ErrMismatch) {
		t.Fatalf("other name: %v", err)
	}
	if err := p.Binds(p.GossipName, netip.MustParseAddrPort("192.0.2.10:1")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("other port: %v", err)
	}
}
