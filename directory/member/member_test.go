package member

import (
	"testing"
	"time"

	"veil/directory"
	"veil/directory/gossip"
	"veil/directory/internal/dirtest"
)

func gossipMember(t *testing.T, label string, roles directory.Roles) (gossip.Member, *directory.Descriptor) {
	t.Helper()
	id := dirtest.Identity(t, label)
	d := dirtest.Descriptor(t, id, label)
	d.Roles = roles
	b := dirtest.Sign(t, id, d)
	parsed, err := directory.ParseDescriptorAnyTime(b)
	if err != nil {
		t.Fatal(err)
	}
	return gossip.Member{Name: id.ID().String(), Pointer: gossip.PointerInfo{Key: id.ID().String(), Digest: parsed.Digest()}, Descriptor: b}, parsed
}

// TestCacheParsesOnce: a Cache lists what Relays lists, parses each
// descriptor once (the same *Descriptor comes back), forgets descriptors
// no member names any more, and leaves out seeds and expired descriptors.
func TestCacheParsesOnce(t *testing.T) {
	now := dirtest.T0
	relay, _ := gossipMember(t, "relay", 0)
	seed, _ := gossipMember(t, "seed", directory.RoleSeed)
	junk := gossip.Member{Name: "junk", Pointer: gossip.PointerInfo{Digest: [32]byte{1}}, Descriptor: []byte("not a descriptor")}
	members := []gossip.Member{relay, seed, junk}
	var c Cache
	first := c.relays(members, now)
	if len(first) != 1 || first[0].Desc.Digest() != relay.Pointer.Digest {
		t.Fatalf("listed %d relays, want the one relay", len(first))
	}
	if want := relays(members, now, func(m gossip.Member) *directory.Descriptor {
		d, _ := directory.ParseDescriptorAnyTime(m.Descriptor)
		return d
	}); len(want) != len(first) {
		t.Fatalf("Cache lists %d, Relays %d", len(first), len(want))
	}
	again := c.relays(members, now)
	if len(again) != 1 || again[0].Desc != first[0].Desc {
		t.Fatal("the descriptor was parsed again")
	}
	if len(c.m) != 3 {
		t.Fatalf("%d cached, want 3 (junk remembered as unparsable)", len(c.m))
	}
	c.relays(members[:1], now)
	if len(c.m) != 1 {
		t.Fatalf("%d cached after two members left, want 1", len(c.m))
	}
	if got := c.relays(members, first[0].Desc.Expires.Add(time.Second)); len(got) != 0 {
		t.Fatal("an expired descriptor was listed")
	}
}
