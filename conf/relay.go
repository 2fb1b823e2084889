package conf

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"veil/conf/exitpolicy"
)

// Relay configures `veil relay`: a node that carries circuits and, if its
// operator opts in, exits to the internet or stores shards.
type Relay struct {
	Common
	Gossip
	ORAddr           string   `toml:"or_addr"`            // onion-routing listener; port 0 = pick a free port
	ORAddrV6         string   `toml:"or_addr_v6"`         // a second OR listener, IPv6; "" = none
	ORAdvertise      string   `toml:"or_advertise"`       // OR address in the descriptor; "" = or_addr's
	ORAdvertiseV6    string   `toml:"or_advertise_v6"`    // IPv6 OR address in the descriptor; "" = or_addr_v6's
	GossipAddr       string   `toml:"gossip_addr"`        // memberlist bind address; port 0 = pick a free port
	GossipAdvertise  string   `toml:"gossip_advertise"`   // gossip address others are told; "" = gossip_addr's
	Seeds            []string `toml:"seeds"`              // gossip addresses of seeds to join; at least one
	Exit             bool     `toml:"exit"`               // connect to the internet for clients
	ExitPolicy       []string `toml:"exit_policy"`        // exitpolicy rules, used when exit = true
	Storage          bool     `toml:"storage"`            // keep shards for `veil share`
	StorageQuota     Size     `toml:"storage_quota"`      // disk for shards, used when storage = true
	BandwidthRate    Size     `toml:"bandwidth_rate"`     // bytes per second advertised for path weighting
	OnionKeyRotation Duration `toml:"onion_key_rotation"` // lifetime of an onion key
	OnionKeyGrace    Duration `toml:"onion_key_grace"`    // how long a retired onion key still works
	ShutdownWait     Duration `toml:"shutdown_wait"`      // how long SIGTERM lets streams finish; 0 = close at once
	Family           []string `toml:"family"`             // node IDs of the operator's other relays
	Contact          string   `toml:"contact"`            // how to reach the operator; public
	MetricsAddr      string   `toml:"metrics_addr"`       // Prometheus listener; "" = off, port 0 = pick a free port
	MetricsPublic    bool     `toml:"metrics_public"`     // allow metrics_addr off loopback
	MaxMemory        Size     `toml:"max_memory"`         // ceiling for circuit and stream buffers
	MaxCircuits      int      `toml:"max_circuits"`       // open circuits at once
	// DirCacheSeeds are the [[dir_cache_seed]] tables: the seeds whose
	// signed consensus the relay mirrors for clients (directory/SPEC.md
	// §8). None: the relay is no directory cache.
	DirCacheSeeds   []SeedPin `toml:"dir_cache_seed"`
	DirCacheRefresh Duration  `toml:"dir_cache_refresh"` // least time between fetches of the mirrored consensus
	// The cap on relayed bytes and the accounting (accounting.go).
	RelayBandwidthRate  Size            `toml:"relay_bandwidth_rate"`  // bytes per second each way on links; 0 = no cap
	RelayBandwidthBurst Size            `toml:"relay_bandwidth_burst"` // token bucket size; 0 = the rate
	AccountingMax       Size            `toml:"accounting_max"`        // bytes per accounting period, then hibernate; 0 = off
	AccountingStart     AccountingStart `toml:"accounting_start"`      // when each accounting period begins
	AccountingRule      string          `toml:"accounting_rule"`       // how sent and received bytes count against accounting_max
}

// maxContact bounds the contact string, which every descriptor carries.
const maxContact = 256

// minMaxMemory is the least memory that holds buffers for a useful number of
// circuits; below it a relay would refuse nearly everything.
const minMaxMemory = 16 * MiB

// DefaultRelay returns a relay config that joins a seed running with
// DefaultSeed on the same machine, as a middle relay only.
func DefaultRelay() Relay {
	return Relay{
		Common: defaultCommon("relay"),
		Gossip: defaultGossip(),
		// Tor's customary ORPort, on loopback until the operator decides
		// to face the internet.
		ORAddr: "127.0.0.1:9001",
		// No second listener: a host with IPv6 adds it, or listens on
		// [::] for both.
		ORAddrV6: "",
		// Advertise what is bound; behind NAT, in a container or on
		// 0.0.0.0 the operator names the public address (torrc's
		// Address, and ORPort's NoListen / NoAdvertise).
		ORAdvertise:   "",
		ORAdvertiseV6: "",
		// Next to DefaultSeed's 7946 so both fit on one machine.
		GossipAddr: "127.0.0.1:7947",
		// As or_advertise: what is bound, unless the operator says.
		GossipAdvertise: "",
		// DefaultSeed's gossip address, so the defaults form a network.
		Seeds: []string{"127.0.0.1:7946"},
		// Exiting puts the operator's address on other people's traffic;
		// it must be a deliberate choice.
		Exit: false,
		// Written out so the operator sees and edits what an exit would do.
		ExitPolicy: exitpolicy.Default().Lines(),
		// Storing shards spends the operator's disk; opt in.
		Storage: false,
		// Enough for many shared files, small beside a typical VPS disk.
		StorageQuota: 10 * GiB,
		// A modest VPS; it errs low so a relay is not sent more traffic
		// than it can carry. Operators with more should say so.
		BandwidthRate: 10 * MiB,
		// Circuit keys are fresh per handshake (G2), so the onion key only
		// authenticates; a week bounds the use of a leaked key while keeping
		// descriptor churn low (Tor uses four weeks).
		OnionKeyRotation: Duration(7 * 24 * time.Hour),
		// A day covers clients holding a descriptor from before the
		// rotation, well past a consensus's lifetime.
		OnionKeyGrace: Duration(24 * time.Hour),
		Family:        []string{},
		Contact:       "",
		// Metrics are opt-in: they reveal load patterns.
		MetricsAddr: "",
		// A relay's counters over time show when it carries traffic;
		// serving them beyond the machine is a choice to make knowingly.
		MetricsPublic: false,
		// Fits a small VPS beside the OS; at a few KB per circuit the
		// buffers of thousands of circuits fit.
		MaxMemory: 256 * MiB,
		// A few KB each plus buffers in flight stays well inside max_memory.
		MaxCircuits: 4096,
		// Tor's ShutdownWaitLength: long enough for a page or a small
		// download to finish, short enough that a restart is not a wait.
		ShutdownWait: Duration(30 * time.Second),
		// No pins: which seeds a relay trusts to sign what it mirrors is
		// the operator's decision, as a client's seeds are the user's.
		DirCacheSeeds: nil,
		// A client's consensus_refresh: the cache follows the seeds'
		// fresh-until, and this floor keeps a seed with a tiny
		// fresh-until from making every relay poll it.
		DirCacheRefresh: Duration(30 * time.Second),
		// No cap and no accounting, as Tor: an operator who pays by the
		// byte or shares a line says so.
		RelayBandwidthRate:  0,
		RelayBandwidthBurst: 0,
		AccountingMax:       0,
		// Tor's AccountingStart default: a period a month, from the 1st.
		AccountingStart: AccountingStart{Unit: PeriodMonth, Day: 1},
		// Tor's AccountingRule default: sent and received each within
		// accounting_max, as most hosting plans count.
		AccountingRule: AccountingRuleMax,
	}
}

// Validate checks every value and returns every problem: a lone *Error, or
// Errors.
func (r *Relay) Validate() error {
	var p problems
	r.validate(&p)
	return p.err()
}

func (r *Relay) validate(p *problems) {
	r.Common.validate(p)
	r.Gossip.validate(p)
	r.checkORAddrs(p)
	checkAdvertised(p, "gossip_addr", r.GossipAddr, "gossip_advertise", r.GossipAdvertise, freePortOK)
	if len(r.Seeds) == 0 {
		p.add(keyError("seeds", `add a seed's gossip address, e.g. seeds = ["127.0.0.1:7946"]`, "no seeds: a relay needs at least one to join the network"))
	}
	checkAddrs(p, "seeds", r.Seeds, fixedPort)
	if _, err := exitpolicy.Parse(r.ExitPolicy); err != nil {
		var se *exitpolicy.SyntaxError
		if !errors.As(err, &se) {
			p.add(keyError("exit_policy", "", "%v", err))
		} else {
			e := keyError("exit_policy", se.Hint, "line %d %q: %s", se.Line, se.Text, se.Msg)
			e.elem = se.Text
			p.add(e)
		}
	}
	if r.Storage && r.StorageQuota == 0 {
		p.add(keyError("storage_quota", `give a size, e.g. "10GiB", or set storage = false`, "storage is on but the quota is 0"))
	}
	if r.BandwidthRate == 0 {
		p.add(keyError("bandwidth_rate", `give the relay's bytes per second, e.g. "10MiB"`, "bandwidth rate must be positive"))
	}
	rotation := checkPositive("onion_key_rotation", r.OnionKeyRotation)
	grace := checkPositive("onion_key_grace", r.OnionKeyGrace)
	p.add(rotation)
	p.add(grace)
	if rotation == nil && grace == nil && r.OnionKeyGrace >= r.OnionKeyRotation {
		p.add(keyError("onion_key_grace", "make it shorter than onion_key_rotation",
			"grace %s is not shorter than the rotation period %s, so old keys would pile up", r.OnionKeyGrace, r.OnionKeyRotation))
	}
	if r.ShutdownWait < 0 {
		p.add(keyError("shutdown_wait", `write a duration, e.g. "30s", or "0s" to close at once`, "duration %s is negative", r.ShutdownWait))
	}
	checkNodeIDs(p, "family", r.Family)
	r.checkPublishable(p)
	if len(r.Contact) > maxContact || strings.ContainsAny(r.Contact, "\r\n") {
		p.add(keyError("contact", fmt.Sprintf("use one line of at most %d bytes", maxContact), "contact is too long or has a line break"))
	}
	p.add(checkMetrics(r.MetricsAddr, r.MetricsPublic))
	if r.MaxMemory < minMaxMemory {
		p.add(keyError("max_memory", fmt.Sprintf("give at least %s", minMaxMemory), "max_memory %s is too small", r.MaxMemory))
	}
	if r.MaxCircuits < 1 {
		p.add(keyError("max_circuits", "give a positive number, e.g. 4096", "max_circuits %d must be positive", r.MaxCircuits))
	}
	checkSeedPins(p, "dir_cache_seed", r.DirCacheSeeds)
	p.add(checkPositive("dir_cache_refresh", r.DirCacheRefresh))
	r.checkBandwidthLimits(p)
}

// Policy returns the exit policy to enforce: RejectAll unless exit is on.
// It fails closed: an unparsable policy (only possible in an unvalidated
// config) also rejects everything.
func (r *Relay) Policy() exitpolicy.Policy {
	if !r.Exit {
		return exitpolicy.RejectAll()
	}
	p, err := exitpolicy.Parse(r.ExitPolicy)
	if err != nil {
		return exitpolicy.RejectAll()
	}
	return p
}
