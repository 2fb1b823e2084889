package path

import (
	"crypto/sha3"
	"io"
	"net/netip"
	"slices"
	"testing"
	"time"

	"veil/conf/exitpolicy"
	"veil/directory"
	"veil/onion"
	"veil/onion/keys"
)

// The helpers replicate the small part of directory/internal/dirtest that
// these tests need, which this package may not import.

// t0 is an arbitrary fixed "now" for every test.
var t0 = time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)

const (
	middleFlags = directory.FlagRunning | directory.FlagValid
	guardFlags  = middleFlags | directory.FlagGuard | directory.FlagStable
	exitFlags   = middleFlags | directory.FlagExit
)

// shake is a deterministic random source: SHAKE-128 of label.
func shake(label string) io.Reader {
	h := sha3.NewSHAKE128()
	h.Write([]byte(label))
	return h
}

func identity(t testing.TB, label string) *keys.Identity {
	t.Helper()
	id, err := keys.GenerateIdentity(shake("identity " + label))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func nodeID(t testing.TB, label string) keys.NodeID { return identity(t, label).ID() }

// relay describes a synthetic relay.
type relay struct {
	label  string
	addr   string // OR address, without the port
	flags  directory.Flags
	bw     uint64            // bytes per second; 0 means 10 MiB/s
	policy exitpolicy.Policy // set for exits; nil means exitpolicy.Default for Exit flags
	family []string          // labels of the relays it declares
	at     time.Time         // when its descriptor is published; zero means t0
	// measured is the seeds' measurement in bytes a second; 0 means the
	// same as bw (an honest claim), and unmeasured that there is none.
	measured   uint64
	unmeasured bool
}

// entry signs and parses the descriptor of r, published at r.at for the
// default lifetime with an onion key certified from an hour before.
func entry(t testing.TB, r relay) directory.Entry {
	t.Helper()
	id := identity(t, r.label)
	at := r.at
	if at.IsZero() {
		at = t0
	}
	created := at.Add(-time.Hour)
	k, err := keys.GenerateOnionKey(id, shake("onion "+r.label), created, created.Add(keys.DefaultRotateEvery+keys.DefaultGrace))
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr(r.addr)
	d := &directory.Descriptor{
		OnionCert:       k.Cert(),
		Nickname:        "relay" + r.label,
		ORAddr:          netip.AddrPortFrom(addr, 9001),
		GossipName:      id.ID().String(),
		GossipAddr:      netip.AddrPortFrom(addr, 7947),
		Bandwidth:       r.bw,
		ProtocolVersion: onion.ProtocolVersion,
		Sequence:        1,
		Published:       at,
		Expires:         at.Add(directory.DefaultDescriptorLifetime),
	}
	if d.Bandwidth == 0 {
		d.Bandwidth = 10 << 20
	}
	if r.flags&directory.FlagExit != 0 || r.policy != nil {
		d.Roles |= directory.RoleExit
		d.Policy = r.policy
		if d.Policy == nil {
			d.Policy = exitpolicy.Default()
		}
	}
	for _, f := range r.family {
		d.Family = append(d.Family, nodeID(t, f))
	}
	slices.SortFunc(d.Family, func(a, b keys.NodeID) int { return slices.Compare(a[:], b[:]) })
	b, err := d.Sign(id)
	if err != nil {
		t.Fatal(err)
	}
	pd, err := directory.ParseDescriptor(b, at)
	if err != nil {
		t.Fatal(err)
	}
	e := directory.Entry{Flags: r.flags, Descriptor: pd}
	switch {
	case r.unmeasured:
	case r.measured != 0:
		e.Weight = uint32(r.measured >> 10)
	default:
		e.Weight = uint32(min(d.Bandwidth>>10, 1<<32-1))
	}
	return e
}

// view returns a View of entries, sorted by node ID as Combine makes them.
func view(entries ...directory.Entry) *directory.View {
	rs := slices.Clone(entries)
	slices.SortFunc(rs, func(a, b directory.Entry) int {
		ai, bi := a.Descriptor.NodeID(), b.Descriptor.NodeID()
		return slices.Compare(ai[:], bi[:])
	})
	return &directory.View{Relays: rs}
}

// entries builds each relay.
func entries(t testing.TB, rs ...relay) []directory.Entry {
	t.Helper()
	out := make([]directory.Entry, len(rs))
	for i, r := range rs {
		out[i] = entry(t, r)
	}
	return out
}

// without returns v minus the relays with the given entries' IDs.
func without(v *directory.View, drop ...directory.Entry) *directory.View {
	var keep []directory.Entry
	for _, e := range v.Relays {
		if !slices.ContainsFunc(drop, func(d directory.Entry) bool { return d.Descriptor.NodeID() == e.Descriptor.NodeID() }) {
			keep = append(keep, e)
		}
	}
	return view(keep...)
}

// withFlags returns v with e's flags replaced.
func withFlags(v *directory.View, e directory.Entry, f directory.Flags) *directory.View {
	rs := slices.Clone(v.Relays)
	for i := range rs {
		if rs[i].Descriptor.NodeID() == e.Descriptor.NodeID() {
			rs[i].Flags = f
		}
	}
	return view(rs...)
}

// clock is an adjustable Options.Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newSelector(t testing.TB, opts Options) *Selector {
	t.Helper()
	if opts.Rand == nil {
		opts.Rand = shake("rand " + t.Name())
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0 }
	}
	s, err := NewSelector(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func same(a, b directory.Entry) bool { return a.Descriptor.NodeID() == b.Descriptor.NodeID() }

func labelOf(e directory.Entry) string { return e.Descriptor.Nickname[len("relay"):] }
