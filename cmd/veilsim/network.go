package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"veil/conf/exitpolicy"
	"veil/directory"
	"veil/onion"
	"veil/onion/keys"
)

// t0 is the simulated start; every descriptor is valid from before it to
// well after the last simulated day.
var t0 = time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)

// The synthetic network: a Tor-like consensus with measured weights.
// Bandwidths are log-normal (median 2 MiB/s; one relay in a thousand above
// 100 MiB/s before the cap); faster relays are likelier to be guards, as
// the Guard flag asks for uptime and bandwidth; a sixth of the relays exit;
// most store shards. Relays sit in 1,200 /16s, a few of them crowded
// hosting ranges, and one in six declares a family of 2 to 6.
const (
	medianKiB     = 2048
	sigma         = 1.2
	slash16s      = 1200
	exitShare     = 0.16
	storageShare  = 0.6
	stableShare   = 0.85 // of relays that are not guards (guards all are)
	familyShare   = 0.16
	claimOverhead = 0.5 // relays claim up to this much above what seeds measure
)

// relaySpec is one relay to put in the consensus.
type relaySpec struct {
	kib     uint32 // measured bandwidth, KiB/s
	guard   bool
	stable  bool
	exit    bool
	storage bool
	net     netip.Prefix // its /16
	family  int          // index of its family, or -1
	adv     bool
}

// network is a view and which of its relays the adversary runs.
type network struct {
	view    *directory.View
	adv     map[*directory.Descriptor]bool
	storage []directory.Entry // relays with the Storage flag
}

// honestSpecs draws n honest relays.
func honestSpecs(r *rand.Rand, n int) []relaySpec {
	nets := make([]netip.Prefix, slash16s)
	for i := range nets {
		nets[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(1 + i/250), byte(i % 250), 0, 0}), 16)
	}
	var specs []relaySpec
	family := 0
	for len(specs) < n {
		kib := uint32(min(max(medianKiB*math.Exp(sigma*r.NormFloat64()), 20), 1<<22))
		guardP := 0.25
		if kib > medianKiB {
			guardP = 0.6
		}
		// A crowded hosting range for one relay in five.
		net := nets[r.IntN(slash16s)]
		if r.Float64() < 0.2 {
			net = nets[r.IntN(20)]
		}
		s := relaySpec{kib: kib, guard: r.Float64() < guardP, exit: r.Float64() < exitShare,
			storage: r.Float64() < storageShare, net: net, family: -1}
		s.stable = s.guard || r.Float64() < stableShare
		if r.Float64() < familyShare/3 {
			// A family of 2 to 6 relays, same operator, similar relays.
			size := 2 + r.IntN(5)
			for range size {
				t := s
				t.family = family
				t.kib = uint32(float64(kib) * (0.5 + r.Float64()))
				specs = append(specs, t)
			}
			family++
			continue
		}
		specs = append(specs, s)
	}
	return specs[:n]
}

// relays signs a descriptor for each spec and parses it back, as a client
// gets them, so that node IDs are worked out once; specs of one family
// list each other. The simulator then moves each expiry past the last
// simulated day: a real client refreshes its consensus every hour, the
// simulation holds one still for 30 days. from numbers the relays' names.
func relays(r *rand.Rand, specs []relaySpec, from int) []directory.Entry {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(r.Uint32())
	}
	keyRand := rand.NewChaCha8(seed)
	ids := make([]*keys.Identity, len(specs))
	for i := range specs {
		id, err := keys.GenerateIdentity(keyRand)
		if err != nil {
			panic(err)
		}
		ids[i] = id
	}
	families := map[int][]keys.NodeID{}
	for i, s := range specs {
		if s.family >= 0 {
			families[s.family] = append(families[s.family], ids[i].ID())
		}
	}
	for _, f := range families {
		slices.SortFunc(f, func(a, b keys.NodeID) int { return slices.Compare(a[:], b[:]) })
	}
	published := t0.Add(-time.Hour)
	hosts := map[netip.Prefix]int{}
	out := make([]directory.Entry, len(specs))
	for i, s := range specs {
		hosts[s.net]++
		a := s.net.Addr().As4()
		h := hosts[s.net]
		addr := netip.AddrFrom4([4]byte{a[0], a[1], byte(h / 250), byte(1 + h%250)})
		ok, err := keys.GenerateOnionKey(ids[i], keyRand, published, published.Add(keys.DefaultRotateEvery+keys.DefaultGrace))
		if err != nil {
			panic(err)
		}
		d := &directory.Descriptor{
			OnionCert:       ok.Cert(),
			Nickname:        fmt.Sprintf("r%d", from+i),
			ORAddr:          netip.AddrPortFrom(addr, 9001),
			GossipName:      ids[i].ID().String(),
			GossipAddr:      netip.AddrPortFrom(addr, 7947),
			Bandwidth:       uint64(float64(s.kib)*(1+claimOverhead*r.Float64())) << 10,
			ProtocolVersion: onion.ProtocolVersion,
			Sequence:        1,
			Published:       published,
			Expires:         published.Add(directory.DefaultDescriptorLifetime),
		}
		flags := directory.FlagRunning | directory.FlagValid
		if s.guard {
			flags |= directory.FlagGuard
		}
		if s.guard || s.stable {
			flags |= directory.FlagStable
		}
		if s.exit {
			flags |= directory.FlagExit
			d.Roles |= directory.RoleExit
			d.Policy = exitpolicy.Default()
		}
		if s.storage {
			flags |= directory.FlagStorage
			d.Roles |= directory.RoleStorage
			d.StorageCapacity = 100 << 30
		}
		if s.family >= 0 {
			for _, id := range families[s.family] {
				if id != ids[i].ID() {
					d.Family = append(d.Family, id)
				}
			}
		}
		b, err := d.Sign(ids[i])
		if err != nil {
			panic(err)
		}
		pd, err := directory.ParseDescriptorAnyTime(b)
		if err != nil {
			panic(err)
		}
		pd.Expires = t0.Add((days + 30) * 24 * time.Hour)
		out[i] = directory.Entry{Flags: flags, Weight: s.kib, Descriptor: pd}
	}
	return out
}

// build makes the view of honest and adversary relays.
func build(honest, adversary []directory.Entry) *network {
	n := &network{view: &directory.View{}, adv: map[*directory.Descriptor]bool{}}
	n.view.Relays = append(append(n.view.Relays, honest...), adversary...)
	for _, e := range adversary {
		n.adv[e.Descriptor] = true
	}
	slices.SortFunc(n.view.Relays, func(a, b directory.Entry) int {
		x, y := a.Descriptor.NodeID(), b.Descriptor.NodeID()
		return slices.Compare(x[:], y[:])
	})
	for _, e := range n.view.Relays {
		if e.Flags&directory.FlagStorage != 0 {
			n.storage = append(n.storage, e)
		}
	}
	return n
}

// role is where an adversary puts its relays.
type role struct {
	name string
	// byRelays says f is a fraction of relays, not of bandwidth.
	byRelays bool
	// add returns the adversary's relays, for a fraction f, given the
	// honest ones.
	add func(r *rand.Rand, honest []relaySpec, f float64) []relaySpec
}

// advKiB is the size of the adversary's relays in the bandwidth roles:
// twice the median, so that none reaches the weight cap and the fraction
// it holds is the fraction it paid for.
const advKiB = 2 * medianKiB

// advNet is the /16 of the adversary's i-th relay: one each, so that the
// /16 rule never keeps two of them off one path.
func advNet(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{100 + byte(i/250), byte(i % 250), 0, 0}), 16)
}

// relaysOf returns relays of kind like totalling kib, in advKiB relays.
func relaysOf(like relaySpec, kib float64, from int) []relaySpec {
	var out []relaySpec
	for i := 0; float64(i)*advKiB < kib; i++ {
		s := like
		s.kib, s.adv, s.family, s.net, s.stable = advKiB, true, -1, advNet(from+i), true
		out = append(out, s)
	}
	return out
}

func sumKiB(specs []relaySpec, keep func(relaySpec) bool) float64 {
	var t float64
	for _, s := range specs {
		if keep(s) {
			t += float64(s.kib)
		}
	}
	return t
}

// roles are the adversaries the simulator plays.
var roles = []role{
	{name: "every role, as the network", add: func(_ *rand.Rand, h []relaySpec, f float64) []relaySpec {
		// f of each kind's bandwidth: the even split.
		var out []relaySpec
		for _, kind := range []relaySpec{{guard: true}, {exit: true}, {guard: true, exit: true}, {}} {
			for _, st := range []bool{false, true} {
				kind.storage = st
				b := sumKiB(h, func(s relaySpec) bool { return s.guard == kind.guard && s.exit == kind.exit && s.storage == st })
				out = append(out, relaysOf(kind, b*f/(1-f), len(out))...)
			}
		}
		return out
	}},
	{name: "guards and exits, half each", add: func(_ *rand.Rand, h []relaySpec, f float64) []relaySpec {
		a := sumKiB(h, func(relaySpec) bool { return true }) * f / (1 - f)
		out := relaysOf(relaySpec{guard: true, storage: true}, a/2, 0)
		return append(out, relaysOf(relaySpec{exit: true, storage: true}, a/2, len(out))...)
	}},
	{name: "relays flagged Guard and Exit", add: func(_ *rand.Rand, h []relaySpec, f float64) []relaySpec {
		a := sumKiB(h, func(relaySpec) bool { return true }) * f / (1 - f)
		return relaysOf(relaySpec{guard: true, exit: true, storage: true}, a, 0)
	}},
	{name: "middles that store", add: func(_ *rand.Rand, h []relaySpec, f float64) []relaySpec {
		a := sumKiB(h, func(relaySpec) bool { return true }) * f / (1 - f)
		return relaysOf(relaySpec{storage: true}, a, 0)
	}},
	{name: "many small relays, as the network", byRelays: true, add: func(r *rand.Rand, h []relaySpec, f float64) []relaySpec {
		// f of the relays, each measured at the 10th percentile: what
		// cheap machines get once seeds measure them.
		k := int(math.Round(float64(len(h)) * f / (1 - f)))
		out := make([]relaySpec, k)
		for i := range out {
			like := h[r.IntN(len(h))]
			out[i] = relaySpec{kib: uint32(medianKiB * math.Exp(-1.28*sigma)), guard: like.guard, exit: like.exit,
				stable: true, storage: like.storage, net: advNet(i), family: -1, adv: true}
		}
		return out
	}},
}
