package exitpolicy

import "net/netip"

// privatePrefixes are the destinations the "private" keyword covers: networks
// that are reachable only from the exit's own host or site, where an exit
// would otherwise let anyone reach services its operator never meant to
// expose. Unspecified addresses are covered by 0.0.0.0/8 and ::/128.
var privatePrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network", incl. 0.0.0.0 (RFC 1122)
	netip.MustParsePrefix("10.0.0.0/8"),     // RFC 1918
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("169.254.0.0/16"), // link-local
	netip.MustParsePrefix("172.16.0.0/12"),  // RFC 1918
	netip.MustParsePrefix("192.168.0.0/16"), // RFC 1918
	netip.MustParsePrefix("::/128"),         // unspecified
	netip.MustParsePrefix("::1/128"),        // loopback
	netip.MustParsePrefix("fc00::/7"),       // unique local (RFC 4193)
	netip.MustParsePrefix("fe80::/10"),      // link-local
}

// PrivatePrefixes returns a copy of the ranges the "private" keyword covers.
func PrivatePrefixes() []netip.Prefix {
	return append([]netip.Prefix(nil), privatePrefixes...)
}

// IsPrivate reports whether addr falls in a range the "private" keyword
// covers. IPv4-mapped IPv6 addresses are judged by their IPv4 address.
func IsPrivate(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	for _, p := range privatePrefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
