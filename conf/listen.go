package conf

import (
	"fmt"
	"net/netip"
)

// Listen and advertised addresses (issue 16 item 2). A node binds its
// listen addresses and tells the network its advertised ones, as torrc's
// ORPort with NoListen / NoAdvertise and Address do: a relay behind NAT or
// in a container listens on 0.0.0.0 or [::] and advertises the public
// address that reaches it. Descriptors carry IP addresses, so both kinds
// are IP literals here: a host name would pass a bind and fail later, at
// start, without a line. What start-up would refuse is refused here, at
// the key's line.

// checkListen validates a listen address: host:port with an IP literal
// host, which may be the unspecified 0.0.0.0 or [::].
func checkListen(key, addr string, zero portZero) *Error {
	if err := checkAddr(key, addr, zero); err != nil {
		return err
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || ap.Addr().Zone() != "" {
		return keyError(key, `write an IP address and port, e.g. "0.0.0.0:9001", "[::]:9001" or "203.0.113.7:9001"`,
			"listen address %q is not an IP address and port", addr)
	}
	return nil
}

// checkAdvertise validates an advertised address: a specific IP address
// (not 0.0.0.0 or [::], no zone, IPv4 never as IPv4-mapped IPv6) and a
// port, where 0 means the port of the matching listen address.
func checkAdvertise(key, addr string) *Error {
	hint := `write the public IP address and port that reach this node, e.g. "203.0.113.7:9001"`
	if err := checkAddr(key, addr, freePortOK); err != nil {
		return err
	}
	ap, err := netip.ParseAddrPort(addr)
	switch {
	case err != nil || ap.Addr().Zone() != "":
		return keyError(key, hint, "advertised address %q is not an IP address and port", addr)
	case ap.Addr().IsUnspecified():
		return keyError(key, hint, "advertised address %q is unspecified: others cannot connect to it", addr)
	case ap.Addr().Is4In6():
		return keyError(key, fmt.Sprintf("write it as IPv4: %q", netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())),
			"advertised address %q is IPv4-mapped IPv6", addr)
	}
	return nil
}

// unspecified reports whether a valid listen address binds every address
// of the machine, so that it cannot be advertised as it is.
func unspecified(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	return err == nil && ap.Addr().IsUnspecified()
}

// is6 reports whether a valid address is IPv6 (IPv4-mapped excluded).
func is6(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	return err == nil && ap.Addr().Is6() && !ap.Addr().Is4In6()
}

// checkAdvertised checks a listen address and the address advertised for
// it together: the listen address needs an advertised one when it binds
// every address.
func checkAdvertised(p *problems, listenKey, listen, advKey, adv string, zero portZero) {
	l := checkListen(listenKey, listen, zero)
	p.add(l)
	if adv != "" {
		p.add(checkAdvertise(advKey, adv))
		return
	}
	if l == nil && unspecified(listen) {
		p.add(keyError(listenKey, fmt.Sprintf(`say which address others reach this one at, e.g. %s = "203.0.113.7:0" (port 0: this port)`, advKey),
			"%q listens on every address, so it cannot be advertised as it is", listen))
	}
}

// checkORAddrs checks the relay's OR listen and advertised addresses. A
// descriptor carries one OR address, or an IPv4 and an IPv6 one
// (directory/SPEC.md §2.1): or_addr and or_advertise give the first,
// or_addr_v6 and or_advertise_v6 the IPv6 one.
func (r *Relay) checkORAddrs(p *problems) {
	checkAdvertised(p, "or_addr", r.ORAddr, "or_advertise", r.ORAdvertise, freePortOK)
	var v6 []*Error
	add := func(e *Error) {
		if e != nil {
			v6 = append(v6, e)
		}
	}
	if r.ORAddrV6 != "" {
		switch l := checkListen("or_addr_v6", r.ORAddrV6, freePortOK); {
		case l != nil:
			add(l)
		case !is6(r.ORAddrV6):
			add(keyError("or_addr_v6", `write an IPv6 address, e.g. "[::]:9001"; an IPv4 one goes in or_addr`, "%q is not an IPv6 address", r.ORAddrV6))
		case unspecified(r.ORAddr) && is6(r.ORAddr):
			add(keyError("or_addr_v6", `remove or_addr_v6, or set or_addr to "0.0.0.0:9001"`,
				"or_addr %q already listens on every IPv6 (and IPv4) address", r.ORAddr))
		case unspecified(r.ORAddrV6) && r.ORAdvertiseV6 == "":
			add(keyError("or_addr_v6", `say which address others reach this one at, e.g. or_advertise_v6 = "[2001:db8::7]:0" (port 0: this port)`,
				"%q listens on every IPv6 address, so it cannot be advertised as it is", r.ORAddrV6))
		}
	}
	if r.ORAdvertiseV6 != "" {
		if e := checkAdvertise("or_advertise_v6", r.ORAdvertiseV6); e != nil {
			add(e)
		} else if !is6(r.ORAdvertiseV6) {
			add(keyError("or_advertise_v6", "an IPv4 address goes in or_advertise", "%q is not an IPv6 address", r.ORAdvertiseV6))
		}
	}
	for _, e := range v6 {
		p.add(e)
	}
	// A second, IPv6, address needs an IPv4 first one beside it.
	first := r.ORAdvertise
	if first == "" {
		first = r.ORAddr
	}
	if len(v6) == 0 && (r.ORAddrV6 != "" || r.ORAdvertiseV6 != "") && is6(first) {
		key := "or_advertise_v6"
		if r.ORAdvertiseV6 == "" {
			key = "or_addr_v6"
		}
		p.add(keyError(key, "a descriptor carries one IPv4 and one IPv6 OR address: give the IPv4 one in or_addr or or_advertise, or drop this key",
			"the first OR address %q is IPv6 already", first))
	}
}

// Advertised is the address to publish for a listener bound at bound: adv
// if given (its port 0 meaning bound's port), else bound itself, which must
// then be a specific address. Validation has checked adv.
func Advertised(bound netip.AddrPort, adv string) (netip.AddrPort, error) {
	if adv == "" {
		if bound.Addr().IsUnspecified() {
			return bound, fmt.Errorf("%s listens on every address; give the address to publish", bound)
		}
		return bound, nil
	}
	a, err := netip.ParseAddrPort(adv)
	if err != nil {
		return a, err
	}
	if a.Port() == 0 {
		a = netip.AddrPortFrom(a.Addr(), bound.Port())
	}
	return a, nil
}
