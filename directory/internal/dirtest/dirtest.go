// Package dirtest builds deterministic directory documents for tests:
// identities and onion keys drawn from SHAKE-128 of a label, relay
// descriptors and signed consensus documents, all at a fixed time T0.
package dirtest

import (
	"crypto/sha3"
	"io"
	"net/netip"
	"slices"
	"testing"
	"time"

	"veil/directory"
	"veil/onion"
	"veil/onion/keys"
)

// T0 is an arbitrary fixed "now" for every test.
var T0 = time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)

// Running is the flags of a listed, usable relay.
const Running = directory.FlagRunning | directory.FlagValid

// Rand is a deterministic key source: SHAKE-128 of label.
func Rand(label string) io.Reader {
	h := sha3.NewSHAKE128()
	h.Write([]byte(label))
	return h
}

// Identity returns the identity drawn from Rand("identity " + label).
func Identity(t testing.TB, label string) *keys.Identity {
	t.Helper()
	id, err := keys.GenerateIdentity(Rand("identity " + label))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// OnionCert certifies by id an onion key drawn from Rand("onion " + label),
// valid from created for keys.DefaultRotateEvery plus keys.DefaultGrace.
func OnionCert(t testing.TB, id *keys.Identity, label string, created time.Time) *keys.OnionCert {
	t.Helper()
	k, err := keys.GenerateOnionKey(id, Rand("onion "+label), created, created.Add(keys.DefaultRotateEvery+keys.DefaultGrace))
	if err != nil {
		t.Fatal(err)
	}
	return k.Cert()
}

// Descriptor returns the unsigned descriptor of a middle relay named
// "relay" + label at 192.0.2.10 (OR port 9001, gossip port 7947) with
// 10 MiB/s of bandwidth, published at T0 for the default lifetime, with
// an onion key certified from an hour before T0. Tests change its fields
// before they sign it.
func Descriptor(t testing.TB, id *keys.Identity, label string) *directory.Descriptor {
	t.Helper()
	return &directory.Descriptor{
		OnionCert:       OnionCert(t, id, label, T0.Add(-time.Hour)),
		Nickname:        "relay" + label,
		ORAddr:          netip.MustParseAddrPort("192.0.2.10:9001"),
		GossipName:      id.ID().String(),
		GossipAddr:      netip.MustParseAddrPort("192.0.2.10:7947"),
		Bandwidth:       10 << 20,
		ProtocolVersion: onion.ProtocolVersion,
		Sequence:        1,
		Published:       T0,
		Expires:         T0.Add(directory.DefaultDescriptorLifetime),
	}
}

// Sign signs d with id and returns its encoding, failing the test on error.
func Sign(t testing.TB, id *keys.Identity, d *directory.Descriptor) []byte {
	t.Helper()
	b, err := d.Sign(id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// SignedConsensus returns a document listing a copy of entries, signed by
// seed, valid from at for the default lifetime and fresh for a minute.
func SignedConsensus(t testing.TB, seed *keys.Identity, at time.Time, entries []directory.Entry) *directory.Consensus {
	t.Helper()
	c := &directory.Consensus{
		ValidAfter: at,
		FreshUntil: at.Add(time.Minute),
		ValidUntil: at.Add(directory.DefaultConsensusLifetime),
		Relays:     slices.Clone(entries),
	}
	if _, err := c.Sign(seed); err != nil {
		t.Fatal(err)
	}
	return c
}
