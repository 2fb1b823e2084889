package conf

import (
	"fmt"
	"time"
)

// Client configures the client side: `veil proxy`, `share`, `fetch`,
// `status` and `repair`.
type Client struct {
	Common
	SOCKSAddr        string    `toml:"socks_addr"`        // SOCKS5 listener; port 0 = pick a free port
	ConsensusRefresh Duration  `toml:"consensus_refresh"` // least time between consensus fetches
	CircuitPool      int       `toml:"circuit_pool"`      // built circuits kept ready
	GuardLifetime    Duration  `toml:"guard_lifetime"`    // how long a guard is kept
	CircuitLifetime  Duration  `toml:"circuit_lifetime"`  // how long a circuit takes new streams
	LocalTestnet     bool      `toml:"local_testnet"`     // relax the one-relay-per-/16 path rule
	MetricsAddr      string    `toml:"metrics_addr"`      // Prometheus listener; "" = off, port 0 = pick a free port
	MetricsPublic    bool      `toml:"metrics_public"`    // allow metrics_addr off loopback
	Seeds            []SeedPin `toml:"seed"`              // [[seed]] tables; at least one
}

// SeedPin is a seed the client trusts: a consensus counts only when signed
// by a majority of the pinned identities (DESIGN.md G8).
type SeedPin struct {
	Name     string `toml:"name"`     // for messages; 1 to 19 of [A-Za-z0-9]
	DirURL   string `toml:"dir_url"`  // e.g. "http://127.0.0.1:7080"
	Identity string `toml:"identity"` // the seed's node ID, 52 characters of [a-z2-7]
}

// maxCircuitPool bounds the circuits a client builds ahead, each of which
// costs every relay on it memory (G9).
const maxCircuitPool = 64

// DefaultClient returns a client config with no seeds: the seeds a client
// trusts cannot have a default, so Validate refuses it until one is added.
func DefaultClient() Client {
	return Client{
		Common: defaultCommon("client"),
		// The customary SOCKS port, not Tor's 9050, so veil and Tor can
		// run side by side; loopback, since anyone who reaches it can use
		// the client's circuits.
		SOCKSAddr: "127.0.0.1:1080",
		// Hourly, as Tor's clients: seeds sign every minute, but a client
		// fetching every pinned seed's document at each fresh-until would
		// take about 6 MB a minute through its guard on a network of
		// Tor's size (7,000 relays, three seeds; README, Performance). A
		// document lives 3 hours, so an hour leaves room for two failed
		// refreshes; the floor also stops a seed with a tiny fresh-until,
		// or a clock problem, from turning clients into a flood.
		ConsensusRefresh: Duration(time.Hour),
		// Four ready circuits let new streams start without a handshake
		// while costing relays little.
		CircuitPool: 4,
		// Changing guards often exposes a client to more of them, and so
		// to a hostile one sooner; a month is short enough to recover
		// from a bad draw.
		GuardLifetime: Duration(60 * 24 * time.Hour),
		// Tor's figure: ten minutes limits how much activity one exit can
		// link together, without building circuits all the time.
		CircuitLifetime: Duration(10 * time.Minute),
		// Two relays of one /16 on a path may be one operator watching
		// both ends; only a network on one machine has no choice.
		LocalTestnet: false,
		// Metrics are opt-in: their counts show when and how much the
		// client is used.
		MetricsAddr: "",
		// Off loopback, anyone who reaches them learns the user's habits.
		MetricsPublic: false,
		// No seeds: trusting one is the user's decision (G8).
		Seeds: nil,
	}
}

// Validate checks every value and returns every problem: a lone *Error, or
// Errors.
func (c *Client) Validate() error {
	var p problems
	c.validate(&p)
	return p.err()
}

func (c *Client) validate(p *problems) {
	c.Common.validate(p)
	p.add(checkAddr("socks_addr", c.SOCKSAddr, freePortOK))
	p.add(checkPositive("consensus_refresh", c.ConsensusRefresh))
	if c.CircuitPool < 1 || c.CircuitPool > maxCircuitPool {
		p.add(keyError("circuit_pool", fmt.Sprintf("use 1 to %d", maxCircuitPool), "circuit_pool %d out of range", c.CircuitPool))
	}
	p.add(checkPositive("guard_lifetime", c.GuardLifetime))
	p.add(checkPositive("circuit_lifetime", c.CircuitLifetime))
	p.add(checkMetrics(c.MetricsAddr, c.MetricsPublic))
	if len(c.Seeds) == 0 {
		p.add(keyError("seed", "add a [[seed]] table with the name, dir_url and identity of each seed you trust",
			"no seeds: a client needs at least one to fetch and check the consensus"))
	}
	checkSeedPins(p, "seed", c.Seeds)
}
