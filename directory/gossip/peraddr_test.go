package gossip

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/hashicorp/memberlist"
)

// tableNode is a Node with only its member table and callbacks, at self:
// enough to drive admission as memberlist would.
func tableNode(self string) *callbacks {
	n := &Node{
		name:     "self",
		addr:     netip.MustParseAddrPort(self),
		cfg:      Config{VerifyPointer: fakeVerifyPointer},
		log:      slog.New(slog.DiscardHandler),
		kick:     make(chan struct{}, 1),
		joined:   make(chan struct{}, 1),
		events:   make(chan Event, EventQueueSize),
		peers:    map[string]*peer{},
		verified: map[string]verdict{},
	}
	return &callbacks{n}
}

// arrive is an alive message about a new node name at addr: admitted
// (NotifyAlive) and, if so, joined (NotifyJoin), as memberlist does.
func (c *callbacks) arrive(name, addr string) error {
	a := netip.MustParseAddrPort(addr)
	desc := fakeDescriptor(name, 1)
	nd := &memberlist.Node{Name: name, Addr: net.IP(a.Addr().AsSlice()), Port: a.Port(), Meta: fakePointer(name, 1, desc)}
	if err := c.NotifyAlive(nd); err != nil {
		return err
	}
	c.NotifyJoin(nd)
	return nil
}

// TestMembersPerAddressCapped (issue 14 item 6): one host with many ports
// cannot fill the member table. Past MaxMembersPerAddr members at one
// address (an IPv6 /64 counts as one), a newcomer there is refused unless
// a member of that address that is no longer alive can be forgotten; other
// addresses are unaffected, and loopback nodes (a testnet) are not capped.
func TestMembersPerAddressCapped(t *testing.T) {
	c := tableNode("192.0.2.1:7946")
	for i := range MaxMembersPerAddr {
		if err := c.arrive(fmt.Sprint("junk", i), fmt.Sprintf("198.51.100.7:%d", 1000+i)); err != nil {
			t.Fatalf("member %d at one address refused: %v", i, err)
		}
	}
	if err := c.arrive("junk-over", "198.51.100.7:2000"); err == nil {
		t.Fatalf("member %d at one address admitted", MaxMembersPerAddr+1)
	}
	if err := c.arrive("honest", "198.51.100.8:9001"); err != nil {
		t.Fatalf("a member at another address refused: %v", err)
	}
	// One of the address's members dies: a newcomer there takes its room.
	c.NotifyLeave(&memberlist.Node{Name: "junk3"})
	if err := c.arrive("junk-over", "198.51.100.7:2000"); err != nil {
		t.Fatalf("refused although a member at the address is gone: %v", err)
	}
	if _, ok := c.n.peers["junk3"]; ok {
		t.Fatal("the gone member was kept instead of making room")
	}
	if got := len(c.n.peers); got != MaxMembersPerAddr+1 {
		t.Fatalf("%d members, want %d", got, MaxMembersPerAddr+1)
	}

	// IPv6: one /64 is one host.
	c6 := tableNode("[2001:db8::1]:7946")
	for i := range MaxMembersPerAddr {
		if err := c6.arrive(fmt.Sprint("v6-", i), fmt.Sprintf("[2001:db8:1:2::%x]:9001", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c6.arrive("v6-over", "[2001:db8:1:2:ffff::1]:9001"); err == nil {
		t.Fatal("a member from a full /64 admitted")
	}
	if err := c6.arrive("v6-other", "[2001:db8:1:3::1]:9001"); err != nil {
		t.Fatalf("a member from another /64 refused: %v", err)
	}

	// A testnet: every node on 127.0.0.1.
	lo := tableNode("127.0.0.1:7946")
	for i := range 3 * MaxMembersPerAddr {
		if err := lo.arrive(fmt.Sprint("relay", i), fmt.Sprintf("127.0.0.1:%d", 1000+i)); err != nil {
			t.Fatalf("loopback member %d refused: %v", i, err)
		}
	}
}
