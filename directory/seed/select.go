package seed

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"veil/conf/exitpolicy"
	"veil/directory"
	"veil/onion/keys"
)

// stableCap is the longest unbroken membership Stable asks for
// (directory/SPEC.md §5.3: min(1 h, guard_min_uptime)).
const stableCap = time.Hour

// Candidate is a relay the seed knows from gossip, with what the seed has
// observed about it.
type Candidate struct {
	Desc *directory.Descriptor
	// Since is when the relay's current unbroken membership began.
	Since time.Time
	// ProbedOK says its OR port answered with its identity at the last
	// check.
	ProbedOK bool
}

// Admission is the seed operator's policy.
type Admission struct {
	// Allowlist, when not nil, admits only these relays.
	Allowlist map[keys.NodeID]bool
	// MaxPerSlash16 and MaxPerFamily cap how many relays from one IPv4 /16
	// (IPv6 /32) or one declared family are admitted; 0 means no cap.
	MaxPerSlash16, MaxPerFamily int
	// GuardMinUptime is the unbroken membership the Guard flag needs.
	GuardMinUptime time.Duration
}

// Refusal says why a relay is listed without Valid.
type Refusal struct {
	ID     keys.NodeID
	Reason string
}

// Select decides the entries of a consensus. Every candidate whose
// descriptor is valid at now and whose OR port answered is listed; Valid
// marks those the admission policy lets in, so clients see why a relay is
// not used. Caps keep the relays with the longest unbroken membership,
// which a newcomer cannot fake.
func Select(cands []Candidate, pol Admission, now time.Time) ([]directory.Entry, []Refusal) {
	var listed []Candidate
	for _, c := range cands {
		if c.Desc == nil || !c.ProbedOK || c.Desc.CheckTime(now) != nil {
			continue
		}
		listed = append(listed, c)
	}
	// Longest membership first, then by node ID, so the caps are
	// deterministic and favour relays that have been around.
	slices.SortFunc(listed, func(a, b Candidate) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		ai, bi := a.Desc.NodeID(), b.Desc.NodeID()
		return slices.Compare(ai[:], bi[:])
	})

	families := familyOf(listed)
	perNet := map[netip.Prefix]int{}
	perFamily := map[int]int{}
	var entries []directory.Entry
	var refused []Refusal
	for _, c := range listed {
		id := c.Desc.NodeID()
		var reason string
		net := directory.OperatorNet(c.Desc.ORAddr.Addr())
		fam := families[id]
		switch {
		case pol.Allowlist != nil && !pol.Allowlist[id]:
			reason = "not on the allowlist"
		case pol.MaxPerSlash16 > 0 && perNet[net] >= pol.MaxPerSlash16:
			reason = fmt.Sprintf("more than %d relays in %s", pol.MaxPerSlash16, net)
		case pol.MaxPerFamily > 0 && perFamily[fam] >= pol.MaxPerFamily:
			reason = fmt.Sprintf("more than %d relays in its family", pol.MaxPerFamily)
		}
		flags := directory.FlagRunning
		if reason == "" {
			flags |= directory.FlagValid
			perNet[net]++
			perFamily[fam]++
		} else {
			refused = append(refused, Refusal{ID: id, Reason: reason})
		}
		flags |= roleFlags(c.Desc)
		up := now.Sub(c.Since)
		stable := up >= min(stableCap, pol.GuardMinUptime)
		if stable {
			flags |= directory.FlagStable
		}
		if stable && reason == "" && up >= pol.GuardMinUptime {
			flags |= directory.FlagGuard
		}
		entries = append(entries, directory.Entry{Flags: flags, Descriptor: c.Desc})
	}
	slices.SortFunc(entries, func(a, b directory.Entry) int {
		ai, bi := a.Descriptor.NodeID(), b.Descriptor.NodeID()
		return slices.Compare(ai[:], bi[:])
	})
	return entries, refused
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
