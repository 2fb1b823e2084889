package directory

import (
	"crypto/sha3"
	"io"
	"net/netip"
	"testing"
	"time"

	"veil/conf/exitpolicy"
	"veil/onion"
	"veil/onion/keys"
)

// t0 is an arbitrary fixed "now" for every test.
var t0 = time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)

// testRand is a deterministic key source: SHAKE-128 of a label.
func testRand(label string) io.Reader {
	h := sha3.NewSHAKE128()
	h.Write([]byte(label))
	return h
}

func testIdentity(t testing.TB, label string) *keys.Identity {
	t.Helper()
	id, err := keys.GenerateIdentity(testRand("identity " + label))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// testCert certifies an onion key from an hour before t0 for 8 days.
func testCert(t testing.TB, id *keys.Identity, label string) *keys.OnionCert {
	t.Helper()
	created := t0.Add(-time.Hour)
	k, err := keys.GenerateOnionKey(id, testRand("onion "+label), created, created.Add(keys.DefaultRotateEvery+keys.DefaultGrace))
	if err != nil {
		t.Fatal(err)
	}
	return k.Cert()
}

// newDescriptor returns an unsigned middle relay's descriptor published at
// t0 for the default lifetime.
func newDescriptor(t testing.TB, id *keys.Identity, label string) *Descriptor {
	t.Helper()
	return &Descriptor{
		OnionCert:       testCert(t, id, label),
		Nickname:        "relay" + label,
		ORAddr:          netip.MustParseAddrPort("192.0.2.10:9001"),
		GossipName:      id.ID().String(),
		GossipAddr:      netip.MustParseAddrPort("192.0.2.10:7947"),
		Bandwidth:       10 << 20,
		ProtocolVersion: onion.ProtocolVersion,
		Sequence:        1,
		Published:       t0,
		Expires:         t0.Add(DefaultDescriptorLifetime),
	}
}

// exitDescriptor is an IPv6 exit and storage relay with a family and a
// contact that is not ASCII.
func exitDescriptor(t testing.TB, id *keys.Identity, label string) *Descriptor {
	t.Helper()
	d := newDescriptor(t, id, label)
	d.ORAddr = netip.MustParseAddrPort("[2001:db8::7]:443")
	d.GossipAddr = netip.MustParseAddrPort("[2001:db8::7]:7947")
	d.Roles = RoleExit | RoleStorage
	d.Policy = exitpolicy.Default()
	d.StorageCapacity = 10 << 30
	d.Family = []keys.NodeID{{1}, {2, 3}}
	d.Contact = "opérateur <op@example.org> ✉"
	return d
}

// signed signs d with id and fails the test on error.
func signed(t testing.TB, id *keys.Identity, d *Descriptor) []byte {
	t.Helper()
	b, err := d.Sign(id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forgeDescriptor encodes d without any checks and signs it properly, for
// documents that are well signed but break a rule.
func forgeDescriptor(id *keys.Identity, d *Descriptor) []byte {
	d.IdentityKey = id.Public()
	body := d.appendBody(nil)
	return append(body, id.Sign(d.label(), body)...)
}

// relay is a signed descriptor with the identity behind it.
type relay struct {
	id *keys.Identity
	d  *Descriptor
}

func newRelay(t testing.TB, label string) relay {
	t.Helper()
	id := testIdentity(t, label)
	d := newDescriptor(t, id, label)
	signed(t, id, d)
	return relay{id, d}
}

// newConsensus returns a document valid from t0 for the default lifetime,
// fresh for a minute, signed by seed.
func newConsensus(t testing.TB, seed *keys.Identity, entries ...Entry) *Consensus {
	t.Helper()
	c := &Consensus{
		ValidAfter: t0,
		FreshUntil: t0.Add(time.Minute),
		ValidUntil: t0.Add(DefaultConsensusLifetime),
		Relays:     entries,
	}
	if _, err := c.Sign(seed); err != nil {
		t.Fatal(err)
	}
	return c
}

// forgeConsensus encodes c without checks and signs it with seed.
func forgeConsensus(seed *keys.Identity, c *Consensus) []byte {
	c.SeedKey = seed.Public()
	body := c.appendBody(nil)
	return append(body, seed.Sign(ConsensusLabel, body)...)
}

const running = FlagRunning | FlagValid
