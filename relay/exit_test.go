package relay

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"veil/conf/exitpolicy"
	"veil/onion"
)

// fakeResolver answers from a table; it never asks real DNS.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestExitConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := uint16(closed.Addr().(*net.TCPAddr).Port)
	closed.Close()

	e := newExiter(exitpolicy.LoopbackOnly())
	e.resolver = fakeResolver{
		"local.test":   {netip.MustParseAddr("127.0.0.1")},
		"private.test": {netip.MustParseAddr("10.1.2.3")},
		// A name that resolves to a forbidden address first and an allowed
		// one second is dialled only at the allowed one.
		"mixed.test": {netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("127.0.0.1")},
	}
	loop := netip.MustParseAddr("127.0.0.1")
	cases := []struct {
		name string
		b    onion.Begin
		want onion.EndReason
	}{
		{"loopback address", onion.Begin{Addr: loop, Port: port}, 0},
		{"loopback name", onion.Begin{Hostname: "local.test", Port: port}, 0},
		{"mixed name", onion.Begin{Hostname: "mixed.test", Port: port}, 0},
		// Refused by policy before any packet is sent: these addresses
		// are never dialled.
		{"private address", onion.Begin{Addr: netip.MustParseAddr("10.1.2.3"), Port: 80}, onion.EndExitPolicy},
		{"private name", onion.Begin{Hostname: "private.test", Port: 80}, onion.EndExitPolicy},
		{"public address", onion.Begin{Addr: netip.MustParseAddr("192.0.2.1"), Port: 443}, onion.EndExitPolicy},
		{"unknown name", onion.Begin{Hostname: "nowhere.test", Port: 80}, onion.EndResolveFailed},
		{"refused", onion.Begin{Addr: loop, Port: closedPort}, onion.EndConnectRefused},
	}
	for _, tc := range cases {
		c, _, reason := e.connect(context.Background(), tc.b)
		if reason != tc.want {
			t.Errorf("%s: reason %v, want %v", tc.name, reason, tc.want)
		}
		if (c != nil) != (tc.want == 0) {
			t.Errorf("%s: conn %v", tc.name, c)
		}
		if c != nil {
			c.Close()
		}
	}
}

func TestDefaultPolicyRefusesPrivate(t *testing.T) {
	e := newExiter(exitpolicy.Default())
	for _, a := range []string{"127.0.0.1", "10.0.0.1", "192.168.0.1", "169.254.1.1", "::1", "fe80::1"} {
		if _, _, r := e.connect(context.Background(), onion.Begin{Addr: netip.MustParseAddr(a), Port: 80}); r != onion.EndExitPolicy {
			t.Errorf("%s: reason %v, want exit policy", a, r)
		}
	}
}

// TestExitRefusesItsOwnAddresses: an exit with the default policy refuses
// every address of its host and its published OR address.
func TestExitRefusesItsOwnAddresses(t *testing.T) {
	r := &Relay{orAddr: netip.MustParseAddrPort("192.0.2.7:9001"), log: slog.New(slog.DiscardHandler)}
	own := r.ownAddrs()
	if len(own) < 2 {
		t.Fatalf("own addresses %v: want the OR address and the host's interfaces", own)
	}
	e := newExiter(exitpolicy.Default().RejectOwn(own))
	for _, a := range own {
		if e.policy.Load().Allows(a, 80) {
			t.Errorf("the exit's policy allows its own address %s", a)
		}
	}
	// (No stream is tried: were the rule missing, the exit would dial a
	// host address, and tests reach nothing but 127.0.0.1.)
}
