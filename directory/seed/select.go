package seed

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"veil/conf/exitpolicy"
	"veil/directory"
	"veil/onion/keys"
)

// stableCap is the longest weighted MTBF Stable asks for
// (directory/SPEC.md §5.3: min(1 h, guard_min_uptime)).
const stableCap = time.Hour

// Candidate is a relay the seed knows from gossip, with what the seed has
// observed about it.
type Candidate struct {
	Desc *directory.Descriptor
	// ProbedOK says its OR port answered with its identity at its
	// current address, and has not failed its checks past the grace
	// since (probe.go).
	ProbedOK bool
	// History is what the seed remembers of the relay (history.go),
	// kept across restarts by node ID.
	History Stats
}

// Admission is the seed operator's policy.
type Admission struct {
	// Allowlist, when not nil, admits only these relays.
	Allowlist map[keys.NodeID]bool
	// MaxPerSlash16 and MaxPerFamily cap how many relays from one IPv4 /16
	// (IPv6 /32) or one declared family are admitted; 0 means no cap.
	MaxPerSlash16, MaxPerFamily int
	// GuardMinUptime is the weighted time known the Guard flag needs,
	// and caps the weighted MTBF Stable needs; 0 gives both at once.
	GuardMinUptime time.Duration
	// GuardMinFraction is the weighted fractional uptime, 0..1, the
	// Guard flag needs when GuardMinUptime is not 0.
	GuardMinFraction float64
	// Weight gives a relay's measured bandwidth in KiB/s, 0 if not
	// measured (measure.go); nil means none is.
	Weight func(keys.NodeID) uint32
}

// Refusal says why a relay is listed without Valid, or left out.
type Refusal struct {
	ID     keys.NodeID
	Reason string
	// Kind is Reason's class, from a fixed set, for metrics: Reason
	// names networks and gossip names, which a label must never carry.
	Kind RefusalKind
}

// RefusalKind classes refusals. Append only: the names are metric labels
// that dashboards know.
type RefusalKind int

const (
	RefusedAllowlist  RefusalKind = iota // not on the allowlist
	RefusedSlash16                       // its /16 already has max_relays_per_slash16
	RefusedFamily                        // its family already has max_relays_per_family
	RefusedDuplicate                     // another gossip member carries its identity
	RefusedUnsignable                    // its entry could not be signed
	numRefusalKinds
)

var refusalKindNames = [numRefusalKinds]string{"allowlist", "slash16", "family", "duplicate_identity", "unsignable"}

func (k RefusalKind) String() string {
	if k >= 0 && k < numRefusalKinds {
		return refusalKindNames[k]
	}
	return fmt.Sprintf("RefusalKind(%d)", int(k))
}

// Select decides the entries of a consensus. Every candidate whose
// descriptor is valid at now and whose OR port answered is listed; Valid
// marks those the admission policy lets in, so clients see why a relay is
// not used. Caps keep the relays the seed has known longest, which a
// newcomer cannot fake and a seed restart does not change.
func Select(cands []Candidate, pol Admission, now time.Time) ([]directory.Entry, []Refusal) {
	var listed []Candidate
	for _, c := range cands {
		if c.Desc == nil || !c.ProbedOK || c.Desc.CheckTime(now) != nil {
			continue
		}
		listed = append(listed, c)
	}
	listed, refused := oneByIdentity(listed)
	// Known longest first, then by node ID, so the caps are
	// deterministic and favour relays that have been around.
	slices.SortFunc(listed, func(a, b Candidate) int {
		if c := a.History.FirstSeen.Compare(b.History.FirstSeen); c != 0 {
			return c
		}
		ai, bi := a.Desc.NodeID(), b.Desc.NodeID()
		return slices.Compare(ai[:], bi[:])
	})

	families := familyOf(listed)
	perNet := map[netip.Prefix]int{}
	perFamily := map[int]int{}
	var entries []directory.Entry
	for _, c := range listed {
		id := c.Desc.NodeID()
		var reason string
		var kind RefusalKind
		net := directory.OperatorNet(c.Desc.ORAddr.Addr())
		fam := families[id]
		switch {
		case pol.Allowlist != nil && !pol.Allowlist[id]:
			reason, kind = "not on the allowlist", RefusedAllowlist
		case pol.MaxPerSlash16 > 0 && perNet[net] >= pol.MaxPerSlash16:
			reason, kind = fmt.Sprintf("more than %d relays in %s", pol.MaxPerSlash16, net), RefusedSlash16
		case pol.MaxPerFamily > 0 && perFamily[fam] >= pol.MaxPerFamily:
			reason, kind = fmt.Sprintf("more than %d relays in its family", pol.MaxPerFamily), RefusedFamily
		}
		flags := directory.FlagRunning
		if reason == "" {
			flags |= directory.FlagValid
			perNet[net]++
			perFamily[fam]++
		} else {
			refused = append(refused, Refusal{ID: id, Reason: reason, Kind: kind})
		}
		flags |= roleFlags(c.Desc)
		stable := c.History.MTBF >= min(stableCap, pol.GuardMinUptime)
		if stable {
			flags |= directory.FlagStable
		}
		if stable && reason == "" && familiar(c.History, pol) {
			flags |= directory.FlagGuard
		}
		var weight uint32
		if pol.Weight != nil {
			weight = pol.Weight(id)
		}
		entries = append(entries, directory.Entry{Flags: flags, Weight: weight, Descriptor: c.Desc})
	}
	slices.SortFunc(entries, func(a, b directory.Entry) int {
		ai, bi := a.Descriptor.NodeID(), b.Descriptor.NodeID()
		return slices.Compare(ai[:], bi[:])
	})
	entries, dropped := signable(entries)
	return entries, append(refused, dropped...)
}

// familiar is the Guard rule's history half (directory/SPEC.md §5.3, after
// Tor's): known for GuardMinUptime (weighted) and up for GuardMinFraction of
// it. With GuardMinUptime 0 (testnets) the fraction is not asked either:
// over seconds of history it is noise, and a relay restarted in a testnet
// would lose Guard for minutes over a few seconds down.
func familiar(h Stats, pol Admission) bool {
	if pol.GuardMinUptime == 0 {
		return true
	}
	return h.Known >= pol.GuardMinUptime && h.Fraction >= pol.GuardMinFraction
}

// signable drops, from entries sorted by node ID, each entry a consensus
// could not carry (directory.Entry.Check) and any repeat of a node ID, so
// that one member's data can never make the whole signing fail.
func signable(entries []directory.Entry) (kept []directory.Entry, dropped []Refusal) {
	kept = entries[:0]
	for _, e := range entries {
		if err := e.Check(); err != nil {
			var id keys.NodeID
			if e.Descriptor != nil {
				id = e.Descriptor.NodeID()
			}
			dropped = append(dropped, Refusal{ID: id, Reason: "cannot be signed: " + err.Error(), Kind: RefusedUnsignable})
			continue
		}
		if n := len(kept); n > 0 && kept[n-1].Descriptor.NodeID() == e.Descriptor.NodeID() {
			dropped = append(dropped, Refusal{ID: e.Descriptor.NodeID(), Reason: "listed twice", Kind: RefusedDuplicate})
			continue
		}
		kept = append(kept, e)
	}
	return kept, dropped
}

// oneByIdentity keeps one candidate per node ID. Two gossip members can
// carry one identity (a relay can sign descriptors for as many names as it
// likes), and a consensus lists each node ID once, so the seed must choose:
// the newest descriptor (highest sequence, then latest published, then the
// lowest digest, so that every seed picks the same one). Each candidate left out is
// refused, with the reason (directory/SPEC.md §5.2).
func oneByIdentity(cands []Candidate) (kept []Candidate, refused []Refusal) {
	best := map[keys.NodeID]int{}
	count := map[keys.NodeID]int{}
	for i, c := range cands {
		id := c.Desc.NodeID()
		count[id]++
		j, ok := best[id]
		if !ok || newer(c.Desc, cands[j].Desc) {
			best[id] = i
		}
	}
	for i, c := range cands {
		id := c.Desc.NodeID()
		if best[id] == i {
			kept = append(kept, c)
			continue
		}
		refused = append(refused, Refusal{ID: id, Kind: RefusedDuplicate, Reason: fmt.Sprintf(
			"identity carried by %d gossip members; kept the one named %q", count[id], cands[best[id]].Desc.GossipName)})
	}
	return kept, refused
}

// newer says a is preferred to b, two descriptors of one identity.
func newer(a, b *directory.Descriptor) bool {
	if a.Sequence != b.Sequence {
		return a.Sequence > b.Sequence
	}
	if !a.Published.Equal(b.Published) {
		return a.Published.After(b.Published)
	}
	ad, bd := a.Digest(), b.Digest()
	return bytes.Compare(ad[:], bd[:]) < 0
}

// roleFlags gives Exit and Storage to relays whose descriptors offer them in
// a usable way: an exit policy that accepts something, a storage capacity.
func roleFlags(d *directory.Descriptor) directory.Flags {
	var f directory.Flags
	if d.Roles&directory.RoleExit != 0 && acceptsAnything(d) {
		f |= directory.FlagExit
	}
	if d.Roles&directory.RoleStorage != 0 && d.StorageCapacity > 0 {
		f |= directory.FlagStorage
	}
	return f
}

func acceptsAnything(d *directory.Descriptor) bool {
	for _, r := range d.ExitPolicy() {
		if r.Action == exitpolicy.Accept {
			return true
		}
	}
	return false
}

// familyOf groups relays into families by mutual declaration: two relays
// are one family only if each lists the other, so no relay can pull
// another into its family (and under its cap) by naming it.
func familyOf(cands []Candidate) map[keys.NodeID]int {
	byID := make(map[keys.NodeID]*directory.Descriptor, len(cands))
	for _, c := range cands {
		byID[c.Desc.NodeID()] = c.Desc
	}
	declares := func(d *directory.Descriptor, id keys.NodeID) bool {
		return slices.Contains(d.Family, id)
	}
	parent := make(map[keys.NodeID]keys.NodeID, len(cands))
	find := func(x keys.NodeID) keys.NodeID {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	for id := range byID {
		parent[id] = id
	}
	for id, d := range byID {
		for _, other := range d.Family {
			if od, ok := byID[other]; ok && declares(od, id) {
				a, b := find(id), find(other)
				if a != b {
					parent[a] = b
				}
			}
		}
	}
	// Number the families in node ID order so the result is stable.
	ids := make([]keys.NodeID, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b keys.NodeID) int { return slices.Compare(a[:], b[:]) })
	num := map[keys.NodeID]int{}
	out := make(map[keys.NodeID]int, len(ids))
	for _, id := range ids {
		root := find(id)
		n, ok := num[root]
		if !ok {
			n = len(num)
			num[root] = n
		}
		out[id] = n
	}
	return out
}
