package conf

import "encoding/base64"

// Gossip holds the keys seeds and relays share about the membership gossip.
// It is embedded, so its keys sit at the top level of each file.
type Gossip struct {
	NetworkKey   string `toml:"network_key"`   // base64 32-byte gossip key; "" = open gossip
	GossipTiming string `toml:"gossip_timing"` // "lan" or "local"
}

// Gossip timing profiles.
const (
	// GossipLAN suits nodes on real networks: failures are declared after
	// seconds, so a slow link is not mistaken for a dead node.
	GossipLAN = "lan"
	// GossipLocal suits a network on one machine (a testnet): a killed
	// node is declared dead in about a second.
	GossipLocal = "local"
)

func defaultGossip() Gossip {
	return Gossip{
		// Gossip carries only signed pointers, so secrecy is optional; a
		// key keeps strangers out of a private network.
		NetworkKey: "",
		// Safe on any network; testnets opt in to the fast profile.
		GossipTiming: GossipLAN,
	}
}

func (g *Gossip) validate(p *problems) {
	if g.NetworkKey != "" {
		if k, err := base64.StdEncoding.DecodeString(g.NetworkKey); err != nil || len(k) != 32 {
			p.add(keyError("network_key", "generate one with: head -c 32 /dev/urandom | base64",
				"network key must be 32 bytes in standard base64"))
		}
	}
	if g.GossipTiming != GossipLAN && g.GossipTiming != GossipLocal {
		p.add(keyError("gossip_timing", `use "lan", or "local" for a network on one machine`, "unknown gossip timing %q", g.GossipTiming))
	}
}

// GossipKey returns the decoded network key, or nil for open gossip. It
// assumes a validated config.
func (g *Gossip) GossipKey() []byte {
	k, err := base64.StdEncoding.DecodeString(g.NetworkKey)
	if err != nil || len(k) != 32 {
		return nil
	}
	return k
}
