package path

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"veil/conf/exitpolicy"
	"veil/directory"
)

// Destination is where a circuit's exit connects: an address, or a host
// name that the exit resolves (names are never resolved by the client, so
// nothing leaks locally). Exactly one of Addr and Host is set.
type Destination struct {
	Addr netip.Addr
	Host string
	Port uint16
}

// String returns host:port or addr:port, for messages.
func (d Destination) String() string {
	if d.Addr.IsValid() {
		return netip.AddrPortFrom(d.Addr, d.Port).String()
	}
	return fmt.Sprintf("%s:%d", d.Host, d.Port)
}

func (d Destination) check() error {
	switch {
	case d.Port == 0:
		return fmt.Errorf("path: destination %s: port 0", d)
	case d.Addr.IsValid() && d.Host != "":
		return fmt.Errorf("path: destination has both address %s and host %q", d.Addr, d.Host)
	case !d.Addr.IsValid() && d.Host == "":
		return fmt.Errorf("path: destination has neither address nor host")
	}
	return nil
}

// allowedBy reports whether an exit with policy p may carry a stream to d
// (SPEC.md §2.3). For an address it is exactly p.Allows. For a host name,
// which the exit resolves, it is whether p could allow the port for some
// address: some accept rule covers the port and is not shadowed by an
// earlier reject of every address of its family on that port. The exit
// still checks the address it resolves and refuses the stream if p does
// not allow it; the client then retries on another circuit. Rejecting
// such exits up front would need the client to resolve the name itself,
// which G6 and the SOCKS front door forbid.
func allowedBy(p exitpolicy.Policy, d Destination) bool {
	if d.Addr.IsValid() {
		return p.Allows(d.Addr, d.Port)
	}
	var v4Gone, v6Gone bool // every IPv4 (IPv6) address already rejected on this port
	for _, r := range p {
		if d.Port < r.PortLo || d.Port > r.PortHi {
			continue
		}
		v4, v6 := families(r)
		if r.Action == exitpolicy.Reject {
			// Only rules that cover a whole family shadow later ones;
			// partial rejects leave some addresses for an accept.
			switch r.Kind {
			case exitpolicy.AnyAddr:
				v4Gone, v6Gone = true, true
			case exitpolicy.AnyIPv4:
				v4Gone = true
			case exitpolicy.AnyIPv6:
				v6Gone = true
			}
			continue
		}
		if (v4 && !v4Gone) || (v6 && !v6Gone) {
			return true
		}
	}
	return false
}

// families reports which address families a rule's ADDRSPEC touches.
func families(r exitpolicy.Rule) (v4, v6 bool) {
	switch r.Kind {
	case exitpolicy.AnyAddr:
		return true, true
	case exitpolicy.AnyIPv4:
		return true, false
	case exitpolicy.AnyIPv6:
		return false, true
	case exitpolicy.PrivateAddr:
		for _, p := range exitpolicy.PrivatePrefixes() {
			if p.Addr().Is4() {
				v4 = true
			} else {
				v6 = true
			}
		}
		return v4, v6
	case exitpolicy.PrefixAddr:
		return r.Prefix.Addr().Is4(), r.Prefix.Addr().Is6()
	}
	return false, false
}

// has reports whether e carries every flag in want and a descriptor valid
// at now.
func has(e directory.Entry, want directory.Flags, now time.Time) bool {
	return e.Flags&want == want && e.Descriptor != nil && e.Descriptor.CheckTime(now) == nil
}

const (
	flagsRunning = directory.FlagRunning | directory.FlagValid
	flagsGuard   = flagsRunning | directory.FlagGuard
	flagsExit    = flagsRunning | directory.FlagExit
)

// conflict says why a and b may not be on one circuit, or "" if they may
// (SPEC.md §2.2): the same relay, one /16 (IPv6 /32) unless sameSubnetOK,
// or one family.
func conflict(a, b *directory.Descriptor, sameSubnetOK bool) string {
	return newHopRule(b).conflict(a, directory.OperatorNet(a.ORAddr.Addr()), sameSubnetOK)
}

// hopRule is a hop that candidates are checked against, with its /16
// worked out once: a draw checks every candidate against the same hops.
type hopRule struct {
	d   *directory.Descriptor
	net netip.Prefix
}

func newHopRule(d *directory.Descriptor) hopRule {
	return hopRule{d: d, net: directory.OperatorNet(d.ORAddr.Addr())}
}

// conflict is conflict(a, h.d) for a candidate a whose /16 is anet. It
// compares identity keys (a node ID is a hash of one) and hashes a key
// into a node ID only when both relays declare a family.
func (h hopRule) conflict(a *directory.Descriptor, anet netip.Prefix, sameSubnetOK bool) string {
	b := h.d
	switch {
	case a == b || bytes.Equal(a.IdentityKey, b.IdentityKey):
		return "same relay"
	case !sameSubnetOK && anet == h.net:
		return "same " + subnetName(a.ORAddr.Addr())
	case len(a.Family) > 0 && len(b.Family) > 0 &&
		slices.Contains(a.Family, b.NodeID()) && slices.Contains(b.Family, a.NodeID()):
		return "same family"
	}
	return ""
}

func subnetName(a netip.Addr) string {
	if a.Unmap().Is6() {
		return "/32"
	}
	return "/16"
}
