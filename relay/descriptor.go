package relay

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"veil/conf"
	"veil/directory"
	"veil/onion"
	"veil/onion/keys"
)

// publisher makes the relay's descriptors. Sequence numbers come from the
// clock in milliseconds, so they keep rising across restarts without any
// state on disk, and from a counter when two fall in one millisecond.
type publisher struct {
	cfg     *conf.Relay // set at New; replaced, never changed, by setConfig
	store   *keys.Store
	lastSeq uint64 // owned by the relay's run loop
	// orAddrV6 is the IPv6 OR address published beside an IPv4 one (a
	// version 2 descriptor, directory/SPEC.md §2.1), or zero; set at New.
	orAddrV6 netip.AddrPort

	mu       sync.Mutex  // guards cfg after New
	reloaded atomic.Bool // a reload changed what descriptors say
}

// config returns the config descriptors are made from.
func (p *publisher) config() *conf.Relay {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

// setConfig makes descriptors from cfg from now on, and makes one due at
// once (Relay.Reload).
func (p *publisher) setConfig(cfg *conf.Relay) {
	p.mu.Lock()
	p.cfg = cfg
	p.mu.Unlock()
	p.reloaded.Store(true)
}

// build signs a descriptor for the relay as it is now.
func (p *publisher) build(now time.Time, orAddr, gossipAddr netip.AddrPort) (*directory.Descriptor, error) {
	p.reloaded.Store(false) // a reload from here on asks for another
	cfg := p.config()
	cur, _ := p.store.OnionKeys()
	cert := cur.Cert()
	seq := max(p.lastSeq+1, uint64(now.UnixMilli()))
	now = now.Truncate(time.Second)
	d := &directory.Descriptor{
		OnionCert:       cert,
		Nickname:        cfg.Nickname,
		ORAddr:          orAddr,
		ORAddrV6:        p.orAddrV6,
		GossipName:      p.store.Identity().ID().String(),
		GossipAddr:      gossipAddr,
		Bandwidth:       uint64(cfg.AdvertisedBandwidth()),
		ProtocolVersion: onion.ProtocolVersion,
		Contact:         cfg.Contact,
		Sequence:        seq,
		Published:       now,
		// The cert must cover the descriptor's whole life
		// (directory/SPEC.md §2).
		Expires: minTime(now.Add(directory.DefaultDescriptorLifetime), cert.Expires),
	}
	if cfg.Exit {
		d.Roles |= directory.RoleExit
		d.Policy = cfg.Policy()
		if len(d.Policy) > directory.MaxExitRules {
			return nil, fmt.Errorf("relay: exit policy has %d rules; descriptors carry at most %d", len(d.Policy), directory.MaxExitRules)
		}
	}
	if cfg.Storage {
		d.Roles |= directory.RoleStorage
		d.StorageCapacity = uint64(cfg.StorageQuota)
	}
	for _, s := range cfg.Family {
		id, err := keys.ParseNodeID(s)
		if err != nil {
			return nil, fmt.Errorf("relay: family: %w", err)
		}
		if id != p.store.Identity().ID() && !slices.Contains(d.Family, id) {
			d.Family = append(d.Family, id)
		}
	}
	slices.SortFunc(d.Family, func(a, b keys.NodeID) int { return slices.Compare(a[:], b[:]) })
	if _, err := d.Sign(p.store.Identity()); err != nil {
		return nil, fmt.Errorf("relay: sign descriptor: %w", err)
	}
	p.lastSeq = seq
	return d, nil
}

// due says whether the descriptor should be replaced: past half its life,
// or made with an onion key that is no longer the current one.
func (p *publisher) due(d *directory.Descriptor, now time.Time) bool {
	if d == nil || p.reloaded.Load() {
		return true
	}
	cur, _ := p.store.OnionKeys()
	half := d.Published.Add(d.Expires.Sub(d.Published) / 2)
	return now.After(half) || cur.Public() != d.OnionCert.OnionKey
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
