package conf

import "time"

// Seed configures `veil seed`: a bootstrap node that relays join by gossip,
// that checks them, and that signs the consensus clients trust.
type Seed struct {
	Common
	Gossip
	GossipAddr          string   `toml:"gossip_addr"`              // memberlist bind address
	GossipAdvertise     string   `toml:"gossip_advertise"`         // gossip address others are told; "" = gossip_addr's
	DirAddr             string   `toml:"dir_addr"`                 // HTTP directory address
	DirAdvertise        string   `toml:"dir_advertise"`            // directory address in the seed's descriptor; "" = dir_addr's
	PeerSeeds           []string `toml:"peer_seeds"`               // gossip addresses of the other seeds
	ConsensusInterval   Duration `toml:"consensus_interval"`       // how often a consensus is signed
	Admission           string   `toml:"admission"`                // "open" or "allowlist"
	Allowlist           []string `toml:"allowlist"`                // relay node IDs admitted under "allowlist"
	MaxRelaysPerSlash16 int      `toml:"max_relays_per_slash16"`   // 0 = no limit
	MaxRelaysPerFamily  int      `toml:"max_relays_per_family"`    // 0 = no limit
	GuardMinUptime      Duration `toml:"guard_min_uptime"`         // weighted time known before the Guard flag; 0 = at once
	GuardMinUptimePct   int      `toml:"guard_min_uptime_percent"` // weighted fractional uptime Guard needs, 0..100; 0 = no minimum
	RateLimitPerMinute  int      `toml:"rate_limit_per_minute"`    // directory requests per client IP; 0 = no limit
	MetricsAddr         string   `toml:"metrics_addr"`             // Prometheus listener; "" = off, port 0 = pick a free port
	MetricsPublic       bool     `toml:"metrics_public"`           // allow metrics_addr off loopback
}

// DefaultSeed returns a seed config that runs on loopback out of the box.
func DefaultSeed() Seed {
	return Seed{
		Common: defaultCommon("seed"),
		Gossip: defaultGossip(),
		// memberlist's own default port; loopback so that a seed started
		// without thought is not exposed until its operator says so.
		GossipAddr: "127.0.0.1:7946",
		// What is bound, unless the operator names a public address
		// (behind NAT, in a container, or listening on 0.0.0.0).
		GossipAdvertise: "",
		// Next to the gossip port and clear of common services; loopback
		// for the same reason.
		DirAddr: "127.0.0.1:7080",
		// As gossip_advertise.
		DirAdvertise: "",
		// A lone seed is a valid (test) network; more seeds are listed
		// explicitly because each one is a trust decision.
		PeerSeeds: []string{},
		// Relays joining or leaving show up within a minute, yet a
		// consensus per minute is cheap to sign, serve and verify.
		ConsensusInterval: Duration(60 * time.Second),
		// Like Tor: anyone may run a relay. Allowlists are for private
		// networks and emergencies.
		Admission: "open",
		Allowlist: []string{},
		// Caps what one cheap hosting /16 can add in a Sybil attack while
		// leaving room for honest operators who share a provider. Loopback
		// testnets set 0.
		MaxRelaysPerSlash16: 8,
		// An honest family beyond 8 relays is rare; a large "family" is
		// more often one operator trying to be many paths.
		MaxRelaysPerFamily: 8,
		// Tor asks a guard to be known for 8 weighted days, or for the
		// network's median if lower; the median lets a Sybil flood of new
		// relays drag the bar down, so a seed keeps a fixed one: 4
		// weighted days, about 5 days up without a break (each 12 hours
		// weighs 5% less, directory/SPEC.md §5.3.1). A Sybil must keep its
		// relays up that long before clients pin them as guards for
		// months, and a new network still gets guards within a week.
		// Testnets set 0.
		GuardMinUptime: Duration(96 * time.Hour),
		// Tor's WFU_TO_GUARANTEE_GUARD: up 98% of the (weighted) time the
		// seed has watched it, so a guard is one that is usually there.
		GuardMinUptimePct: 98,
		// A client needs about one consensus a minute; 60 leaves room for
		// retries and descriptor fetches while bounding a flood (G9).
		RateLimitPerMinute: 60,
		// Metrics are opt-in, and on loopback unless the operator says
		// otherwise: a seed's counters show when relays come and go.
		MetricsAddr:   "",
		MetricsPublic: false,
	}
}

// Validate checks every value and returns every problem: a lone *Error, or
// Errors.
func (s *Seed) Validate() error {
	var p problems
	s.validate(&p)
	return p.err()
}

func (s *Seed) validate(p *problems) {
	s.Common.validate(p)
	checkAdvertised(p, "gossip_addr", s.GossipAddr, "gossip_advertise", s.GossipAdvertise, fixedPort)
	checkAdvertised(p, "dir_addr", s.DirAddr, "dir_advertise", s.DirAdvertise, fixedPort)
	checkAddrs(p, "peer_seeds", s.PeerSeeds, fixedPort)
	p.add(checkPositive("consensus_interval", s.ConsensusInterval))
	switch s.Admission {
	case "open":
	case "allowlist":
		if len(s.Allowlist) == 0 {
			p.add(keyError("admission", "list the node IDs of the relays to admit, or set admission = \"open\"",
				"admission is \"allowlist\" but the allowlist is empty, so no relay could join"))
		}
	default:
		p.add(keyError("admission", `use "open" or "allowlist"`, "unknown admission mode %q", s.Admission))
	}
	checkNodeIDs(p, "allowlist", s.Allowlist)
	if s.MaxRelaysPerSlash16 < 0 {
		p.add(keyError("max_relays_per_slash16", "use 0 for no limit", "limit %d is negative", s.MaxRelaysPerSlash16))
	}
	if s.MaxRelaysPerFamily < 0 {
		p.add(keyError("max_relays_per_family", "use 0 for no limit", "limit %d is negative", s.MaxRelaysPerFamily))
	}
	if s.GuardMinUptime < 0 {
		p.add(keyError("guard_min_uptime", `use "0s" to give every relay the Guard flag at once`, "duration %s is negative", s.GuardMinUptime))
	}
	if s.GuardMinUptimePct < 0 || s.GuardMinUptimePct > 100 {
		p.add(keyError("guard_min_uptime_percent", "write a percentage from 0 (no minimum) to 100; Tor uses 98",
			"%d is not a percentage", s.GuardMinUptimePct))
	}
	s.Gossip.validate(p)
	if s.RateLimitPerMinute < 0 {
		p.add(keyError("rate_limit_per_minute", "use 0 for no limit", "limit %d is negative", s.RateLimitPerMinute))
	}
	p.add(checkMetrics(s.MetricsAddr, s.MetricsPublic))
}
