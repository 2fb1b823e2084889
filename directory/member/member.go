// Package member makes a seed or relay a verified member of the gossip
// cluster: it signs the node's pointer for its descriptor, and checks the
// pointers and descriptors other members gossip (directory/SPEC.md §3–§4).
// It is the glue between the directory's documents and the gossip package,
// which carries them as opaque bytes.
package member

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"veil/conf"
	"veil/directory"
	"veil/directory/gossip"
	"veil/onion/keys"
)

// Verifier checks what other members gossip.
type Verifier struct {
	// Now is the clock descriptors are checked against; nil means
	// time.Now.
	Now func() time.Time
}

func (v Verifier) now() time.Time {
	if v.Now == nil {
		return time.Now()
	}
	return v.Now()
}

// Pointer parses a member's metadata as a signed pointer and checks that it
// speaks for the memberlist node that carries it, so that no node can
// gossip under another's name or address.
func (v Verifier) Pointer(name string, addr netip.AddrPort, meta []byte) (gossip.PointerInfo, error) {
	p, err := directory.ParsePointer(meta)
	if err != nil {
		return gossip.PointerInfo{}, err
	}
	if err := p.Binds(name, addr); err != nil {
		return gossip.PointerInfo{}, err
	}
	return gossip.PointerInfo{Key: p.NodeID().String(), Seq: p.Sequence, Digest: p.Digest}, nil
}

// Descriptor checks a fetched descriptor against the pointer that named it:
// it must parse and be valid now, and carry the pointer's identity,
// sequence and digest. The digest covers the whole signed descriptor, and
// the pointer is signed by the same identity, so nothing else could match.
func (v Verifier) Descriptor(p gossip.PointerInfo, b []byte) error {
	d, err := directory.ParseDescriptor(b, v.now())
	if err != nil {
		return err
	}
	if d.NodeID().String() != p.Key || d.Sequence != p.Seq || d.Digest() != p.Digest {
		return fmt.Errorf("member: descriptor of %s (sequence %d) does not match its pointer: %w",
			d.NodeID().Short(), d.Sequence, directory.ErrMismatch)
	}
	return nil
}

// Options say how a node joins the cluster.
type Options struct {
	Identity   *keys.Identity
	Descriptor *directory.Descriptor // signed
	BindAddr   string                // the gossip listen address
	// AdvertiseAddr is the address other nodes are told, which must be the
	// descriptor's gossip address; "" = BindAddr (gossip.Config).
	AdvertiseAddr string
	Join          []string     // seeds' gossip addresses
	Gossip        *conf.Gossip // network key and timing profile
	Logger        *slog.Logger
	Now           func() time.Time
}

// Join starts the node's membership. Joining the seeds goes on in the
// background until ctx ends or the node is closed.
func Join(ctx context.Context, o Options) (*gossip.Node, error) {
	ptr, err := o.Descriptor.Pointer().Sign(o.Identity)
	if err != nil {
		return nil, fmt.Errorf("member: sign pointer: %w", err)
	}
	v := Verifier{Now: o.Now}
	cfg := gossip.Config{
		Name:             o.Identity.ID().String(),
		BindAddr:         o.BindAddr,
		AdvertiseAddr:    o.AdvertiseAddr,
		Join:             o.Join,
		Pointer:          ptr,
		Descriptor:       o.Descriptor.Bytes(),
		VerifyPointer:    v.Pointer,
		VerifyDescriptor: v.Descriptor,
		Logger:           o.Logger,
		Timing:           Timing(o.Gossip.GossipTiming),
	}
	if o.Gossip.NetworkKey != "" {
		cfg.SecretKey = o.Gossip.GossipKey()
	}
	n, err := gossip.Start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("member: %w", err)
	}
	return n, nil
}

// Announce replaces the node's descriptor and pointer in gossip, after a
// republication or an onion-key rotation.
func Announce(n *gossip.Node, id *keys.Identity, d *directory.Descriptor) error {
	ptr, err := d.Pointer().Sign(id)
	if err != nil {
		return fmt.Errorf("member: sign pointer: %w", err)
	}
	if err := n.UpdateSelf(ptr, d.Bytes()); err != nil {
		return fmt.Errorf("member: announce: %w", err)
	}
	return nil
}

// Timing maps a config's gossip_timing to a gossip clock.
func Timing(profile string) gossip.Timing {
	if profile == conf.GossipLocal {
		return gossip.Fast()
	}
	return gossip.LAN()
}

// Known is a member's descriptor as the directory sees it.
type Known struct {
	Desc  *directory.Descriptor
	Since time.Time // start of its unbroken membership
}

// Relays returns the members that are relays, with descriptors valid at
// now. Seeds' own descriptors are left out.
func Relays(n *gossip.Node, now time.Time) []Known {
	return relays(n.Members(), now, func(m gossip.Member) *directory.Descriptor {
		d, _ := directory.ParseDescriptorAnyTime(m.Descriptor)
		return d
	})
}

func relays(members []gossip.Member, now time.Time, parse func(gossip.Member) *directory.Descriptor) []Known {
	var out []Known
	for _, m := range members {
		if m.Descriptor == nil {
			continue
		}
		d := parse(m)
		if d == nil || d.CheckTime(now) != nil || d.Roles&directory.RoleSeed != 0 {
			continue
		}
		out = append(out, Known{Desc: d, Since: m.Since})
	}
	return out
}

// A Cache is Relays that parses each descriptor once. A seed lists its
// members at every signing and for its prober several times a second, and
// each parse checks two signatures: with a thousand members that would be
// a busy core. Entries are kept by the digest the member's pointer names,
// which the gossip layer checked the descriptor against, and dropped when
// no member names them. Safe for concurrent use; the zero value is ready.
type Cache struct {
	mu sync.Mutex // guards m
	m  map[[gossip.DigestSize]byte]*directory.Descriptor
}

// Relays is Relays with parsed descriptors kept for the next call.
func (c *Cache) Relays(n *gossip.Node, now time.Time) []Known {
	return c.relays(n.Members(), now)
}

func (c *Cache) relays(members []gossip.Member, now time.Time) []Known {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := make(map[[gossip.DigestSize]byte]*directory.Descriptor, len(members))
	out := relays(members, now, func(m gossip.Member) *directory.Descriptor {
		d, ok := c.m[m.Pointer.Digest]
		if !ok {
			// A descriptor that does not parse is remembered as nil, so
			// a member gossiping junk costs one parse, not one a call.
			d, _ = directory.ParseDescriptorAnyTime(m.Descriptor)
		}
		next[m.Pointer.Digest] = d
		return d
	})
	c.m = next
	return out
}

// Gossip carries any descriptor the directory accepts.
var _ [gossip.MaxDescriptorSize - directory.MaxDescriptorLen]struct{}
