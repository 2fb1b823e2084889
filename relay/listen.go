package relay

// Listen and advertised addresses (issue 16 item 2): the relay binds
// or_addr (and or_addr_v6) and gossip_addr, and publishes or_advertise
// (and or_advertise_v6) and gossip_advertise, each defaulting to what was
// bound. conf refuses, at the key's line, every combination that leaves
// nothing to publish.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"veil/conf"
)

// orPort is what New binds for the OR port and what the descriptor says.
type orPort struct {
	ln     net.Listener   // or_addr's listener, with or_addr_v6's merged in
	addr   netip.AddrPort // published OR address
	addrV6 netip.AddrPort // published IPv6 OR address beside an IPv4 one; zero when none
}

// listenOR binds or_addr and, when set, or_addr_v6, and works out the
// addresses to publish.
func listenOR(cfg *conf.Relay) (orPort, error) {
	var p orPort
	ln, bound, err := listenTCP(cfg.ORAddr)
	if err != nil {
		return p, fmt.Errorf("relay: or_addr: %w", err)
	}
	if p.addr, err = conf.Advertised(bound, cfg.ORAdvertise); err != nil {
		ln.Close()
		return p, fmt.Errorf("relay: or_advertise: %w", err)
	}
	p.ln = ln
	if cfg.ORAddrV6 == "" {
		if cfg.ORAdvertiseV6 != "" {
			// Published without a listener of its own (NoListen): a port
			// mapping or a dual-stack or_addr reaches the relay.
			if p.addrV6, err = conf.Advertised(bound, cfg.ORAdvertiseV6); err != nil {
				ln.Close()
				return p, fmt.Errorf("relay: or_advertise_v6: %w", err)
			}
		}
		return p, nil
	}
	ln6, bound6, err := listenTCP(cfg.ORAddrV6)
	if err != nil {
		ln.Close()
		return p, fmt.Errorf("relay: or_addr_v6: %w", err)
	}
	if p.addrV6, err = conf.Advertised(bound6, cfg.ORAdvertiseV6); err != nil {
		ln.Close()
		ln6.Close()
		return p, fmt.Errorf("relay: or_advertise_v6: %w", err)
	}
	p.ln = newMultiListener(ln, ln6)
	return p, nil
}

func listenTCP(addr string) (net.Listener, netip.AddrPort, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	bound, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil {
		ln.Close()
		return nil, netip.AddrPort{}, err
	}
	return ln, netip.AddrPortFrom(bound.Addr().Unmap(), bound.Port()), nil
}

// multiListener accepts from several listeners as one, so the OR port's
// accept loop, its limits and its shutdown serve an IPv4 and an IPv6
// listener alike. Its goroutines (one per listener) start at the first
// Accept and end at Close, which waits for them.
type multiListener struct {
	lns     []net.Listener
	start   sync.Once
	results chan acceptResult
	done    chan struct{}
	close   sync.Once
	wg      sync.WaitGroup
}

type acceptResult struct {
	c   net.Conn
	err error
}

func newMultiListener(lns ...net.Listener) *multiListener {
	return &multiListener{lns: lns, results: make(chan acceptResult), done: make(chan struct{})}
}

// Accept returns the next connection from any listener, or a listener's
// error (the caller backs off from a temporary one, as with one listener).
func (m *multiListener) Accept() (net.Conn, error) {
	m.start.Do(func() {
		for _, ln := range m.lns {
			m.wg.Go(func() { m.acceptFrom(ln) })
		}
	})
	select {
	case r := <-m.results:
		return r.c, r.err
	case <-m.done:
		return nil, net.ErrClosed
	}
}

// acceptFrom hands ln's connections to Accept until Close. The hand-over
// is unbuffered, so a caller that backs off after an error holds this
// loop back too.
func (m *multiListener) acceptFrom(ln net.Listener) {
	for {
		c, err := ln.Accept()
		select {
		case m.results <- acceptResult{c, err}:
		case <-m.done:
			if c != nil {
				c.Close()
			}
			return
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// Close closes every listener and waits for the accept goroutines.
func (m *multiListener) Close() error {
	var err error
	m.close.Do(func() {
		close(m.done)
		for _, ln := range m.lns {
			err = errors.Join(err, ln.Close())
		}
		m.wg.Wait()
	})
	return err
}

// Addr is the first listener's address (or_addr's).
func (m *multiListener) Addr() net.Addr { return m.lns[0].Addr() }

// listenAddrs names the addresses ln is bound to, for the start-up line.
func listenAddrs(ln net.Listener) string {
	m, ok := ln.(*multiListener)
	if !ok {
		return ln.Addr().String()
	}
	s := ""
	for i, l := range m.lns {
		if i > 0 {
			s += ","
		}
		s += l.Addr().String()
	}
	return s
}
