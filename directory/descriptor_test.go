package directory

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"veil/conf/exitpolicy"
	"veil/onion/keys"
)

func TestDescriptorRoundTrip(t *testing.T) {
	id := testIdentity(t, "a")
	for name, d := range map[string]*Descriptor{
		"middle": newDescriptor(t, id, "a"),
		"exit":   exitDescriptor(t, id, "a"),
	} {
		t.Run(name, func(t *testing.T) {
			b := signed(t, id, d)
			got, err := ParseDescriptor(b, t0)
			if err != nil {
				t.Fatal(err)
			}
			again, err := got.Marshal()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("re-marshal: %v\n in  %x\n out %x", err, b, again)
			}
			if !bytes.Equal(got.Bytes(), b) || got.Digest() != sha256.Sum256(b) || got.Digest() != d.Digest() {
				t.Fatal("Bytes or Digest differ from the signed encoding")
			}
			if got.NodeID() != id.ID() {
				t.Fatalf("NodeID = %s, want %s", got.NodeID(), id.ID())
			}
			// Every field survives, the unexported encoding included.
			if !reflect.DeepEqual(got, d) {
				t.Fatalf("parsed descriptor differs:\n got  %+v\n want %+v", got, d)
			}
			if len(b) > MaxDescriptorLen {
				t.Fatalf("%d bytes, more than MaxDescriptorLen", len(b))
			}
			t.Logf("%s descriptor: %d bytes", name, len(b))
		})
	}
}

func TestDescriptorExitPolicy(t *testing.T) {
	id := testIdentity(t, "a")
	d := exitDescriptor(t, id, "a")
	signed(t, id, d)
	if p := d.ExitPolicy(); !reflect.DeepEqual(p, exitpolicy.Default()) {
		t.Fatalf("ExitPolicy = %v", p)
	}
	m := newDescriptor(t, id, "a")
	if p := m.ExitPolicy(); p != nil || p.Allows(netip.MustParseAddr("192.0.2.1"), 80) {
		t.Fatalf("a middle relay's ExitPolicy = %v, want nil", p)
	}
}

// maxDescriptor fills every variable field to its limit.
func maxDescriptor(t testing.TB, id *keys.Identity) *Descriptor {
	d := exitDescriptor(t, id, "max")
	d.Nickname = strings.Repeat("N", MaxNicknameLen)
	d.GossipName = strings.Repeat("g", MaxGossipNameLen)
	r, err := exitpolicy.ParseRule("reject [ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]/127:65534-65535")
	if err != nil || len(r.String()) != maxRuleLen {
		t.Fatalf("longest rule: %v, %d bytes", err, len(r.String()))
	}
	d.Policy = make(exitpolicy.Policy, MaxExitRules)
	for i := range d.Policy {
		d.Policy[i] = r
	}
	d.Family = make([]keys.NodeID, MaxFamily)
	for i := range d.Family {
		d.Family[i] = keys.NodeID{byte(i + 1)}
	}
	d.Contact = strings.Repeat("c", MaxContactLen)
	// The longest OR addresses: version 2's IPv4 and IPv6 pair.
	d.ORAddr = netip.MustParseAddrPort("192.0.2.7:443")
	d.ORAddrV6 = netip.MustParseAddrPort("[2001:db8::7]:443")
	return d
}

func TestDescriptorMaxLen(t *testing.T) {
	id := testIdentity(t, "max")
	b := signed(t, id, maxDescriptor(t, id))
	if len(b) != MaxDescriptorLen || MaxDescriptorLen != 17828 {
		t.Fatalf("largest descriptor is %d bytes, MaxDescriptorLen %d, SPEC.md says 17828", len(b), MaxDescriptorLen)
	}
	if _, err := ParseDescriptor(b, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseDescriptor(append(b, 0), t0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte more: %v, want ErrTooLarge", err)
	}
	if _, err := ParseDescriptor(make([]byte, 1<<20), t0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("1 MiB: %v, want ErrTooLarge", err)
	}
	d := maxDescriptor(t, id)
	d.Policy = append(d.Policy, d.Policy[0])
	if _, err := d.Sign(id); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Sign with %d rules: %v, want ErrMalformed", len(d.Policy), err)
	}
	if _, err := ParseDescriptorAnyTime(forgeDescriptor(id, d)); err == nil {
		t.Fatal("a descriptor with too many rules parsed")
	}
}

func TestDescriptorMinLen(t *testing.T) {
	id := testIdentity(t, "m")
	d := newDescriptor(t, id, "m")
	d.Nickname, d.GossipName = "m", "g"
	if b := signed(t, id, d); len(b) != minDescriptorLen {
		t.Fatalf("smallest descriptor is %d bytes, minDescriptorLen %d", len(b), minDescriptorLen)
	}
}

func TestDescriptorTruncated(t *testing.T) {
	id := testIdentity(t, "a")
	b := signed(t, id, exitDescriptor(t, id, "a"))
	for n := range len(b) {
		if _, err := ParseDescriptorAnyTime(b[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("first %d of %d bytes: %v, want ErrMalformed", n, len(b), err)
		}
	}
	if _, err := ParseDescriptorAnyTime(append(bytes.Clone(b), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("one extra byte: %v, want ErrMalformed", err)
	}
}

func TestDescriptorEveryByteSigned(t *testing.T) {
	id := testIdentity(t, "a")
	b := signed(t, id, exitDescriptor(t, id, "a"))
	for i := range b {
		for _, x := range []byte{0x01, 0x80} {
			c := bytes.Clone(b)
			c[i] ^= x
			if _, err := ParseDescriptorAnyTime(c); err == nil {
				t.Fatalf("byte %d ^ %#02x accepted", i, x)
			}
		}
	}
}

func TestDescriptorTime(t *testing.T) {
	id := testIdentity(t, "a")
	b := signed(t, id, newDescriptor(t, id, "a"))
	exp := t0.Add(DefaultDescriptorLifetime)
	for _, tc := range []struct {
		now  time.Time
		want error
	}{
		{t0, nil},
		{exp, nil},
		{exp.Add(time.Second), ErrExpired},
		{t0.Add(-ClockSkew), nil},
		{t0.Add(-ClockSkew - time.Second), ErrFromFuture},
		{t0.Add(-30 * 24 * time.Hour), ErrFromFuture},
		{t0.Add(30 * 24 * time.Hour), ErrExpired},
	} {
		_, err := ParseDescriptor(b, tc.now)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("at %s: %v, want %v", tc.now, err, tc.want)
		}
	}
}

func TestDescriptorWrongCert(t *testing.T) {
	id := testIdentity(t, "a")
	other := testIdentity(t, "b")

	d := newDescriptor(t, id, "a")
	d.OnionCert = testCert(t, other, "b")
	if _, err := d.Sign(id); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Sign with another identity's cert: %v, want ErrBadSignature", err)
	}
	if _, err := ParseDescriptorAnyTime(forgeDescriptor(id, d)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("parse with another identity's cert: %v, want ErrBadSignature", err)
	}

	// A cert changed after signing no longer verifies.
	d = newDescriptor(t, id, "a")
	cert := *d.OnionCert
	cert.OnionKey[0] ^= 1
	d.OnionCert = &cert
	if _, err := d.Sign(id); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Sign with a broken cert: %v, want ErrBadSignature", err)
	}
	if _, err := ParseDescriptorAnyTime(forgeDescriptor(id, d)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("parse with a broken cert: %v, want ErrBadSignature", err)
	}

	// The cert must cover the descriptor's whole life.
	for name, mutate := range map[string]func(*Descriptor){
		"cert expires first": func(d *Descriptor) {
			d.Expires = d.OnionCert.Expires.Add(time.Second)
			d.Published = d.Expires.Add(-time.Hour)
		},
		"cert created later": func(d *Descriptor) { d.Published = d.OnionCert.Created.Add(-time.Second) },
	} {
		d := newDescriptor(t, id, "a")
		mutate(d)
		if _, err := d.Sign(id); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Sign: %v, want ErrMalformed", name, err)
		}
		if _, err := ParseDescriptorAnyTime(forgeDescriptor(id, d)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: parse: %v, want ErrMalformed", name, err)
		}
	}
}

// TestDescriptorRules checks every field rule twice: Sign refuses to make
// such a descriptor, and a well-signed one made anyway does not parse.
func TestDescriptorRules(t *testing.T) {
	id := testIdentity(t, "a")
	self := id.ID()
	cases := map[string]func(*Descriptor){
		"empty nickname":       func(d *Descriptor) { d.Nickname = "" },
		"long nickname":        func(d *Descriptor) { d.Nickname = strings.Repeat("a", MaxNicknameLen+1) },
		"nickname dash":        func(d *Descriptor) { d.Nickname = "my-relay" },
		"OR zone":              func(d *Descriptor) { d.ORAddr = netip.MustParseAddrPort("[fe80::1%eth0]:9001") },
		"OR mapped":            func(d *Descriptor) { d.ORAddr = netip.MustParseAddrPort("[::ffff:192.0.2.1]:9001") },
		"OR unspecified":       func(d *Descriptor) { d.ORAddr = netip.MustParseAddrPort("0.0.0.0:9001") },
		"OR port 0":            func(d *Descriptor) { d.ORAddr = netip.MustParseAddrPort("192.0.2.1:0") },
		"gossip port 0":        func(d *Descriptor) { d.GossipAddr = netip.MustParseAddrPort("[2001:db8::1]:0") },
		"empty gossip name":    func(d *Descriptor) { d.GossipName = "" },
		"long gossip name":     func(d *Descriptor) { d.GossipName = strings.Repeat("g", MaxGossipNameLen+1) },
		"gossip name space":    func(d *Descriptor) { d.GossipName = "node one" },
		"unknown role":         func(d *Descriptor) { d.Roles = 8 },
		"seed with a role":     func(d *Descriptor) { d.Roles = RoleSeed | RoleExit; d.Policy = exitpolicy.Default() },
		"exit without rules":   func(d *Descriptor) { d.Roles = RoleExit },
		"rules without exit":   func(d *Descriptor) { d.Policy = exitpolicy.Default() },
		"invalid rule":         func(d *Descriptor) { d.Roles, d.Policy = RoleExit, exitpolicy.Policy{{Action: exitpolicy.Accept}} },
		"storage no capacity":  func(d *Descriptor) { d.Roles = RoleStorage },
		"capacity no storage":  func(d *Descriptor) { d.StorageCapacity = 1 },
		"protocol 0":           func(d *Descriptor) { d.ProtocolVersion = 0 },
		"family unsorted":      func(d *Descriptor) { d.Family = []keys.NodeID{{2}, {1}} },
		"family duplicate":     func(d *Descriptor) { d.Family = []keys.NodeID{{1}, {1}} },
		"family self":          func(d *Descriptor) { d.Family = []keys.NodeID{self} },
		"family too big":       func(d *Descriptor) { d.Family = make([]keys.NodeID, MaxFamily+1) },
		"contact newline":      func(d *Descriptor) { d.Contact = "a\nb" },
		"contact bidi":         func(d *Descriptor) { d.Contact = "abc\u202edef" },
		"contact not UTF-8":    func(d *Descriptor) { d.Contact = "\xff" },
		"contact too long":     func(d *Descriptor) { d.Contact = strings.Repeat("c", MaxContactLen+1) },
		"expires at published": func(d *Descriptor) { d.Expires = d.Published },
		"lifetime too long":    func(d *Descriptor) { d.Expires = d.Published.Add(MaxDescriptorLifetime + time.Second) },
	}
	for name, mutate := range cases {
		d := newDescriptor(t, id, "a")
		mutate(d)
		if _, err := d.Sign(id); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Sign: %v, want ErrMalformed", name, err)
		}
		if name == "OR zone" {
			continue // a zone has no encoding
		}
		if _, err := ParseDescriptorAnyTime(forgeDescriptor(id, d)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: parse: %v, want ErrMalformed", name, err)
		}
	}
	// Lifetime at the limit is fine.
	d := newDescriptor(t, id, "a")
	d.Expires = d.Published.Add(MaxDescriptorLifetime)
	if _, err := ParseDescriptorAnyTime(signed(t, id, d)); err != nil {
		t.Fatal(err)
	}
}

func TestDescriptorRefusesNonCanonicalRule(t *testing.T) {
	id := testIdentity(t, "a")
	d := newDescriptor(t, id, "a")
	d.Roles = RoleExit
	d.Policy = exitpolicy.Policy{{Action: exitpolicy.Accept, Kind: exitpolicy.AnyAddr, PortLo: 443, PortHi: 443}}
	good := forgeDescriptor(id, d)
	if _, err := ParseDescriptorAnyTime(good); err != nil {
		t.Fatal(err)
	}
	// The same rule spelled another way, re-signed.
	for _, spelling := range []string{"accept *:443-443", "accept  *:443", "accept *:443 ", "accept *:0443"} {
		body := bytes.Replace(good[:len(good)-64], []byte("\x0caccept *:443"), append([]byte{byte(len(spelling))}, spelling...), 1)
		b := append(body, id.Sign(DescriptorLabel, body)...)
		if _, err := ParseDescriptorAnyTime(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("rule %q: %v, want ErrMalformed", spelling, err)
		}
	}
}

func TestDescriptorUnknownVersion(t *testing.T) {
	id := testIdentity(t, "a")
	b := signed(t, id, newDescriptor(t, id, "a"))
	b[0] = 3
	body := b[:len(b)-64]
	b = append(body, id.Sign(DescriptorLabel, body)...)
	if _, err := ParseDescriptorAnyTime(b); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "version") {
		t.Fatalf("version 3: %v", err)
	}
}

func TestDescriptorErrorsArePrefixed(t *testing.T) {
	_, err := ParseDescriptor([]byte{1, 2, 3}, t0)
	if err == nil || !strings.HasPrefix(err.Error(), "directory: ") {
		t.Fatalf("error %q lacks the package prefix", err)
	}
}

// TestDescriptorIPv6ORAddr (issue 16 item 2): a relay with an IPv4 and an
// IPv6 OR address signs a version 2 descriptor carrying both (SPEC.md
// §2.1), byte by byte 19 bytes longer than version 1 right after the OR
// address; one without keeps version 1, so nodes that know only version 1
// still use it. The pair is always IPv4 then IPv6, and each version has
// its own label.
func TestDescriptorIPv6ORAddr(t *testing.T) {
	id := testIdentity(t, "a")
	v1 := newDescriptor(t, id, "a")
	b1 := signed(t, id, v1)
	if b1[0] != 1 {
		t.Fatalf("a descriptor with one OR address is version %d, want 1", b1[0])
	}
	d := newDescriptor(t, id, "a")
	d.ORAddrV6 = netip.MustParseAddrPort("[2001:db8::7]:9001")
	b2 := signed(t, id, d)
	if b2[0] != 2 || len(b2) != len(b1)+19 {
		t.Fatalf("version %d, %d bytes; want version 2, %d + 19", b2[0], len(b2), len(b1))
	}
	at := 1 + 32 + keys.OnionCertLen + 1 + len(d.Nickname) + 7
	want := append([]byte{2}, netip.MustParseAddr("2001:db8::7").AsSlice()...)
	want = append(want, 0x23, 0x29) // 9001
	if !bytes.Equal(b2[at:at+19], want) || !bytes.Equal(b2[1:at], b1[1:at]) || !bytes.Equal(b2[at+19:len(b2)-64], b1[at:len(b1)-64]) {
		t.Fatalf("version 2 is not version 1 with the IPv6 address after the OR address:\n v1 %x\n v2 %x", b1, b2)
	}
	got, err := ParseDescriptor(b2, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got.ORAddrV6 != d.ORAddrV6 || !reflect.DeepEqual(got.ORAddrs(), []netip.AddrPort{d.ORAddr, d.ORAddrV6}) {
		t.Fatalf("parsed OR addresses %v", got.ORAddrs())
	}
	if again, err := got.Marshal(); err != nil || !bytes.Equal(again, b2) {
		t.Fatalf("re-marshal: %v", err)
	}
	// Signed under the version 1 label, it is refused: no document can be
	// taken for another version's.
	body := b2[:len(b2)-64]
	if _, err := ParseDescriptorAnyTime(append(bytes.Clone(body), id.Sign(DescriptorLabel, body)...)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("version 2 signed with the version 1 label: %v, want ErrBadSignature", err)
	}
	for name, edit := range map[string]func(*Descriptor){
		"IPv6 beside IPv6": func(d *Descriptor) { d.ORAddr = netip.MustParseAddrPort("[2001:db8::1]:9001") },
		"IPv4 as the IPv6": func(d *Descriptor) { d.ORAddrV6 = netip.MustParseAddrPort("192.0.2.11:9001") },
		"mapped":           func(d *Descriptor) { d.ORAddrV6 = netip.MustParseAddrPort("[::ffff:192.0.2.11]:9001") },
		"unspecified":      func(d *Descriptor) { d.ORAddrV6 = netip.MustParseAddrPort("[::]:9001") },
		"port 0":           func(d *Descriptor) { d.ORAddrV6 = netip.MustParseAddrPort("[2001:db8::7]:0") },
	} {
		bad := newDescriptor(t, id, "a")
		bad.ORAddrV6 = netip.MustParseAddrPort("[2001:db8::7]:9001")
		edit(bad)
		if _, err := bad.Sign(id); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Sign: %v, want ErrMalformed", name, err)
		}
		if _, err := ParseDescriptorAnyTime(forgeDescriptor(id, bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: parse: %v, want ErrMalformed", name, err)
		}
	}
}
