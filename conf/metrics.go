package conf

import (
	"net"
	"net/netip"
)

// checkMetrics validates metrics_addr and metrics_public, which every
// role has: "" is off; otherwise host:port (port 0 picks one), on loopback
// unless public. Counters over time tell whoever reads them when a node is
// used, so serving them to the network must be said in so many words; a
// host name other than localhost counts as off loopback, since it may
// resolve there. Start-up refuses the same (daemonmetrics.Listen).
func checkMetrics(addr string, public bool) *Error {
	if addr == "" {
		return nil
	}
	if err := checkAddr("metrics_addr", addr, freePortOK); err != nil {
		return err
	}
	if public {
		return nil
	}
	host, _, _ := net.SplitHostPort(addr)
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() || host == "localhost" {
		return nil
	}
	return keyError("metrics_addr", `keep it on loopback, e.g. "127.0.0.1:9100", or set metrics_public = true to serve metrics to the network`,
		"metrics address %q is not on loopback: whoever reaches it sees when and how much this node is used", addr)
}
