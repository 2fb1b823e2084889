// Package exitpolicy decides which destinations an exit relay will connect to.
//
// A policy is an ordered list of rules in the spirit of torrc's ExitPolicy:
//
//	reject private:*
//	reject *:25
//	accept *:*
//
// Each rule is "accept|reject ADDRSPEC:PORTSPEC". The first rule that matches
// a destination decides; a destination that no rule matches is rejected, so an
// empty policy allows nothing (DESIGN.md G6: exits are safe by default).
//
// ADDRSPEC is one of
//
//   - any address
//     *4, *6       any IPv4, any IPv6 address
//     private      the ranges listed by PrivatePrefixes
//     1.2.3.4      one IPv4 address; 10.0.0.0/8 an IPv4 prefix
//     [2001:db8::1] one IPv6 address; [2001:db8::]/32 an IPv6 prefix
//
// and PORTSPEC is "*", "N" or "N-M" with 1 <= N <= M <= 65535.
//
// Parsing is strict so that a typo can never widen a policy: prefixes must have
// no host bits set, IPv4-mapped IPv6 rules and zones are refused, and keywords
// are lowercase. Every rule has one canonical spelling, produced by String, and
// Parse(p.Lines()) gives back p exactly.
package exitpolicy

import (
	"fmt"
	"net/netip"
	"strings"
)

// Action says what a matching rule does.
type Action uint8

const (
	Reject Action = iota // the zero Rule rejects, so a forgotten field fails closed
	Accept
)

func (a Action) String() string {
	if a == Accept {
		return "accept"
	}
	return "reject"
}

// AddrKind says which addresses a rule's ADDRSPEC covers.
type AddrKind uint8

const (
	AnyAddr     AddrKind = iota // "*"
	AnyIPv4                     // "*4"
	AnyIPv6                     // "*6"
	PrivateAddr                 // "private"
	PrefixAddr                  // an address or prefix, in Rule.Prefix
)

// Rule is one line of a policy. Rules are comparable with ==.
type Rule struct {
	Action Action
	Kind   AddrKind
	Prefix netip.Prefix // set only when Kind is PrefixAddr; always masked
	PortLo uint16       // first port covered, >= 1
	PortHi uint16       // last port covered, >= PortLo
}

// Matches reports whether the rule covers addr:port. addr should already be
// unmapped; Policy.Allows does that.
func (r Rule) Matches(addr netip.Addr, port uint16) bool {
	if port < r.PortLo || port > r.PortHi {
		return false
	}
	switch r.Kind {
	case AnyAddr:
		return true
	case AnyIPv4:
		return addr.Is4()
	case AnyIPv6:
		return addr.Is6()
	case PrivateAddr:
		return IsPrivate(addr)
	case PrefixAddr:
		return r.Prefix.Contains(addr)
	}
	return false
}

// String returns the canonical spelling of the rule, which ParseRule accepts.
func (r Rule) String() string {
	var addr string
	switch r.Kind {
	case AnyAddr:
		addr = "*"
	case AnyIPv4:
		addr = "*4"
	case AnyIPv6:
		addr = "*6"
	case PrivateAddr:
		addr = "private"
	case PrefixAddr:
		a := r.Prefix.Addr()
		if a.Is6() {
			addr = "[" + a.String() + "]"
		} else {
			addr = a.String()
		}
		if r.Prefix.Bits() != a.BitLen() {
			addr += fmt.Sprintf("/%d", r.Prefix.Bits())
		}
	}
	var ports string
	switch {
	case r.PortLo == 1 && r.PortHi == 65535:
		ports = "*"
	case r.PortLo == r.PortHi:
		ports = fmt.Sprint(r.PortLo)
	default:
		ports = fmt.Sprintf("%d-%d", r.PortLo, r.PortHi)
	}
	return r.Action.String() + " " + addr + ":" + ports
}

// Policy is an ordered list of rules; the first match decides and no match
// means reject. The nil Policy rejects everything.
type Policy []Rule

// Allows reports whether an exit following p may connect to addr:port.
// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry and
// zones are ignored, so neither can slip past a "private" or IPv4 rule.
// Port 0 and invalid addresses are never allowed.
func (p Policy) Allows(addr netip.Addr, port uint16) bool {
	if !addr.IsValid() || port == 0 {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, r := range p {
		if r.Matches(addr, port) {
			return r.Action == Accept
		}
	}
	return false
}

// Lines returns the canonical form of each rule; Parse(p.Lines()) equals p.
func (p Policy) Lines() []string {
	lines := make([]string, len(p))
	for i, r := range p {
		lines[i] = r.String()
	}
	return lines
}

// String returns the canonical rules one per line, for logs and messages.
// strings.Split(p.String(), "\n") parses back to p when p is not empty.
func (p Policy) String() string {
	return strings.Join(p.Lines(), "\n")
}

// Default is the policy an exit gets unless its operator writes one: never
// reach private or loopback networks behind the exit (G6), never relay SMTP
// (spam is the first abuse an open exit attracts), and allow the rest.
func Default() Policy {
	return Policy{
		{Action: Reject, Kind: PrivateAddr, PortLo: 1, PortHi: 65535},
		{Action: Reject, Kind: AnyAddr, PortLo: 25, PortHi: 25},
		{Action: Accept, Kind: AnyAddr, PortLo: 1, PortHi: 65535},
	}
}

// LoopbackOnly lets a testnet's exits reach services on 127.0.0.1 and nothing
// else; it is the explicit opt-in to loopback that G6 asks for.
func LoopbackOnly() Policy {
	return Policy{
		{Action: Accept, Kind: PrefixAddr, Prefix: netip.MustParsePrefix("127.0.0.1/32"), PortLo: 1, PortHi: 65535},
		{Action: Reject, Kind: AnyAddr, PortLo: 1, PortHi: 65535},
	}
}

// RejectAll is the policy of a relay that is not an exit, spelled out.
func RejectAll() Policy {
	return Policy{{Action: Reject, Kind: AnyAddr, PortLo: 1, PortHi: 65535}}
}

// RejectOwn returns p with a rule refusing each of own, the exit's own
// addresses, put first, as Tor's ExitPolicyRejectPrivate does: a stranger
// must not reach through an exit the services bound to the exit's own
// interfaces or its published address (an admin page, a database on the
// public address). An address that an accept rule of p names by prefix is
// left alone: an operator who writes "accept 127.0.0.1:*", as a testnet
// does, means it; "accept *:*" names nothing.
func (p Policy) RejectOwn(own []netip.Addr) Policy {
	var out Policy
	seen := map[netip.Addr]bool{}
	for _, a := range own {
		a = a.Unmap().WithZone("")
		if !a.IsValid() || a.IsUnspecified() || seen[a] || p.names(a) {
			continue
		}
		seen[a] = true
		out = append(out, Rule{Action: Reject, Kind: PrefixAddr, Prefix: netip.PrefixFrom(a, a.BitLen()), PortLo: 1, PortHi: 65535})
	}
	return append(out, p...)
}

// names reports whether an accept rule of p covers a by an explicit prefix.
func (p Policy) names(a netip.Addr) bool {
	for _, r := range p {
		if r.Action == Accept && r.Kind == PrefixAddr && r.Prefix.Contains(a) {
			return true
		}
	}
	return false
}
