package dirserve

import (
	"crypto/sha3"
	"fmt"
	"io"
	"net/netip"
	"testing"
	"time"

	"veil/directory"
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

// testRelay returns a signed middle relay's descriptor published at t0.
func testRelay(t testing.TB, label string, port uint16) *directory.Descriptor {
	t.Helper()
	id := testIdentity(t, label)
	created := t0.Add(-time.Hour)
	k, err := keys.GenerateOnionKey(id, testRand("onion "+label), created, created.Add(keys.DefaultRotateEvery+keys.DefaultGrace))
	if err != nil {
		t.Fatal(err)
	}
	d := &directory.Descriptor{
		OnionCert:       k.Cert(),
		Nickname:        "relay" + label,
		ORAddr:          netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
		GossipName:      id.ID().String(),
		GossipAddr:      netip.MustParseAddrPort("127.0.0.1:7947"),
		Bandwidth:       10 << 20,
		ProtocolVersion: onion.ProtocolVersion,
		Sequence:        1,
		Published:       t0,
		Expires:         t0.Add(directory.DefaultDescriptorLifetime),
	}
	if _, err := d.Sign(id); err != nil {
		t.Fatal(err)
	}
	return d
}

// testConsensus signs a document valid from at, fresh for a minute, that
// lists n relays.
func testConsensus(t testing.TB, seed *keys.Identity, at time.Time, n int) *directory.Consensus {
	t.Helper()
	c := &directory.Consensus{
		ValidAfter: at,
		FreshUntil: at.Add(time.Minute),
		ValidUntil: at.Add(directory.DefaultConsensusLifetime),
	}
	for i := range n {
		c.Relays = append(c.Relays, directory.Entry{
			Flags:      directory.FlagRunning | directory.FlagValid,
			Descriptor: testRelay(t, fmt.Sprint(i), uint16(9001+i)),
		})
	}
	if _, err := c.Sign(seed); err != nil {
		t.Fatal(err)
	}
	return c
}
