package relay

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"veil/conf/exitpolicy"
	"veil/onion"
)

const (
	// exitDialTimeout bounds one connection attempt at the exit.
	exitDialTimeout = 10 * time.Second
	// maxResolvedAddrs bounds how many of a name's addresses are tried.
	maxResolvedAddrs = 8
)

// resolver looks names up; tests replace it so no real DNS is asked.
type resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// exiter opens the TCP connections of exit streams under the exit policy
// (G6). Names are resolved here, at the exit, and the policy is applied to
// the address actually dialled, so a name cannot smuggle a connection to a
// destination the policy forbids (no DNS rebinding).
type exiter struct {
	// policy is the operator's policy with the host's own addresses
	// refused first (setPolicy); a reload swaps it while streams open.
	policy   atomic.Pointer[exitpolicy.Policy]
	own      []netip.Addr // set once, before any stream
	resolver resolver
	dialer   net.Dialer
}

func newExiter(policy exitpolicy.Policy) *exiter {
	e := &exiter{resolver: net.DefaultResolver, dialer: net.Dialer{Timeout: exitDialTimeout}}
	e.setPolicy(policy)
	return e
}

// setPolicy makes p, with the host's own addresses refused, the policy of
// every stream opened from now on.
func (e *exiter) setPolicy(p exitpolicy.Policy) {
	p = p.RejectOwn(e.own)
	e.policy.Store(&p)
}

// connect resolves and dials a BEGIN's destination, or says why not with
// the END reason to send.
func (e *exiter) connect(ctx context.Context, b onion.Begin) (net.Conn, netip.Addr, onion.EndReason) {
	addrs := []netip.Addr{b.Addr}
	if b.Hostname != "" {
		rctx, cancel := context.WithTimeout(ctx, exitDialTimeout)
		found, err := e.resolver.LookupNetIP(rctx, "ip", b.Hostname)
		cancel()
		if err != nil || len(found) == 0 {
			return nil, netip.Addr{}, onion.EndResolveFailed
		}
		addrs = found[:min(len(found), maxResolvedAddrs)]
	}
	reason := onion.EndExitPolicy
	for _, a := range addrs {
		a = a.Unmap()
		if !e.policy.Load().Allows(a, b.Port) {
			continue
		}
		c, err := e.dialer.DialContext(ctx, "tcp", netip.AddrPortFrom(a, b.Port).String())
		if err == nil {
			return c, a, 0
		}
		reason = dialEndReason(err)
	}
	return nil, netip.Addr{}, reason
}

// dialEndReason maps a dial error to the END reason the client turns into
// a SOCKS reply (onion/SPEC.md §7.3).
func dialEndReason(err error) onion.EndReason {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return onion.EndConnectRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return onion.EndNetUnreach
	case errors.Is(err, syscall.EHOSTUNREACH):
		return onion.EndHostUnreach
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return onion.EndTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return onion.EndTimeout
	}
	return onion.EndMisc
}

// ownAddrs are the addresses an exit refuses to reach whatever its policy
// says (exitpolicy.Policy.RejectOwn): every address of every interface of
// the host, and the relay's own OR address, which behind NAT is on none
// of them. Interfaces are read once, at start.
func (r *Relay) ownAddrs() []netip.Addr {
	own := []netip.Addr{r.orAddr.Addr()}
	if r.orAddrV6.IsValid() {
		own = append(own, r.orAddrV6.Addr())
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		r.log.Warn("exit: cannot list this host's addresses; refusing only the OR address", "err", err)
		return own
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			own = append(own, p.Addr())
		}
	}
	return own
}
