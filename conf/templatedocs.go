package conf

import "maps"

// The comments of `veil config init`, one per key, written for operators.
// Template fails (and its test with it) if a key has none.

var templateHeaders = map[string]string{
	"seed": `
veil seed configuration. Every key is shown with its default value; delete
any you do not change. Durations are strings such as "90s", "10m" or "24h".
Unknown keys are errors, so a typo never goes unnoticed.`,
	"relay": `
veil relay configuration. Every key is shown with its default value; delete
any you do not change. Durations are strings such as "90s", "10m" or "24h";
sizes are strings such as "512MiB" or "10GiB". Unknown keys are errors, so a
typo never goes unnoticed.`,
	"client": `
veil client configuration, for veil proxy, share, fetch, status and repair.
Every key is shown with its default value; delete any you do not change.
Durations are strings such as "90s", "10m" or "24h". Unknown keys are errors.
Add at least one [[seed]] table (see the end of this file) before starting.`,
}

var commonDocs = map[string]string{
	"data_dir": `
Directory for this node's keys and state, created with mode 0700 on start.
A relative path is relative to the directory veil is started in. Keep it
private.`,
	"nickname": `
A name for this node in logs and status output: 1 to 19 letters and digits.`,
	"log_level": `
How much to log: "debug", "info", "warn" or "error". "info" never logs
per-circuit details.`,
	"log_format": `
How log lines are written to stderr: "text" (key=value, for people) or
"json" (one object per line, for journald or a log collector).`,
}

var gossipDocs = map[string]string{
	"network_key": `
Base64 of a 32-byte key that encrypts and authenticates gossip, for private
networks; every seed and relay of the network needs the same one. "" leaves
gossip open. Generate one with: head -c 32 /dev/urandom | base64`,
	"gossip_timing": `
How quickly gossip declares a silent node dead: "lan" (seconds, for real
networks) or "local" (about a second, for a network on one machine).`,
}

var seedDocs = map[string]string{
	"gossip_addr": `
Address (IP:port) the membership gossip binds to, TCP and UDP; relays and
the other seeds connect here. Use a public address to accept relays from
elsewhere; "0.0.0.0" or "[::]" needs gossip_advertise.`,
	"gossip_advertise": `
The gossip address (IP:port) relays and seeds are told, if it is not
gossip_addr (behind NAT, in a container, or when gossip_addr is 0.0.0.0 or
[::]). Port 0 means gossip_addr's port.`,
	"dir_addr": `
Address (IP:port) of the HTTP directory that serves the consensus to
clients and relays. "0.0.0.0" or "[::]" needs dir_advertise.`,
	"dir_advertise": `
The directory address (IP:port) the seed publishes in its own descriptor,
if it is not dir_addr. Port 0 means dir_addr's port.`,
	"peer_seeds": `
Gossip addresses (host:port) of the other seeds of this network.`,
	"consensus_interval": `
How often this seed signs a new consensus.`,
	"admission": `
Which relays may join: "open" admits any relay that passes the checks,
"allowlist" only the node IDs listed in allowlist.`,
	"allowlist": `
Node IDs (52 characters, a-z and 2-7) of the relays admitted when admission
is "allowlist".`,
	"max_relays_per_slash16": `
Most relays admitted from one IPv4 /16, to limit what one provider or
attacker can add. 0 means no limit (loopback testnets need that).`,
	"max_relays_per_family": `
Most relays admitted from one declared family. 0 means no limit.`,
	"guard_min_uptime": `
How long this seed must have known a relay before it gets the Guard flag,
counted as Tor counts it: time watched, up or down, with each 12 hours
weighing 5% less, so 96h takes about 5 days. The seed remembers it across
restarts. "0s" gives Guard at once and skips guard_min_uptime_percent (for
testnets).`,
	"guard_min_uptime_percent": `
The share of that time, in percent and weighted the same way, that a relay
must have been up (listed Running) to get the Guard flag. 0 means no
minimum.`,
	"rate_limit_per_minute": `
Directory requests served per client IP address per minute. 0 means no
limit.`,
	"metrics_addr": `
Address (host:port) to serve Prometheus metrics on; "" turns metrics off.
Off loopback it needs metrics_public = true. Port 0 picks a free port and
logs it.`,
	"metrics_public": metricsPublicDoc,
}

// metricsPublicDoc is metrics_public's comment, the same in every role.
const metricsPublicDoc = `
Set to true to serve metrics_addr on an address other than loopback, such as
0.0.0.0:9100 for a Prometheus on another machine. The counters show when and
how much this node is used, so firewall the port to your Prometheus; the
daemon warns at start.`

var relayDocs = map[string]string{
	"or_addr": `
Address (IP:port) where the relay accepts circuits from clients and other
relays. "0.0.0.0:9001" listens on every IPv4 address, "[::]:9001" on every
IPv4 and IPv6 address; both need or_advertise. Port 0 picks a free port.`,
	"or_addr_v6": `
A second OR listener for IPv6 (IP:port), beside an IPv4 or_addr, e.g.
"[::]:9001" or "[2001:db8::7]:9001". "" listens on or_addr alone.`,
	"or_advertise": `
The OR address (IP:port) published in the relay's descriptor, if it is not
or_addr: the public address behind NAT or a container's port mapping, or
the address to publish when or_addr is 0.0.0.0 or [::]. Port 0 means
or_addr's port. "" publishes or_addr.`,
	"or_advertise_v6": `
The IPv6 OR address (IP:port) published beside an IPv4 one, so clients with
either kind of network reach the relay. "" publishes or_addr_v6 if set, else
no IPv6 address. Port 0 means the listening port.`,
	"gossip_addr": `
Address (IP:port) the membership gossip binds to, TCP and UDP. Port 0 picks a
free port. "0.0.0.0" or "[::]" needs gossip_advertise.`,
	"gossip_advertise": `
The gossip address (IP:port) other nodes are told, if it is not gossip_addr
(behind NAT, in a container, or when gossip_addr is 0.0.0.0 or [::]). Port 0
means gossip_addr's port.`,
	"seeds": `
Gossip addresses (host:port) of the seeds to join. At least one.`,
	"exit": `
Whether this relay connects to the internet on behalf of clients. Its
address will appear on their traffic, so turn it on knowingly.`,
	"exit_policy": `
Which destinations an exit may connect to, first match wins, no match means
reject. Each rule is "accept|reject ADDR:PORTS" where ADDR is *, *4, *6,
private, 1.2.3.4, 10.0.0.0/8, [2001:db8::1] or [2001:db8::]/32, and PORTS is
*, 443 or 8000-8999. Used only when exit = true. A testnet that must reach
loopback uses ["accept 127.0.0.1:*", "reject *:*"].`,
	"storage": `
Whether this relay stores encrypted shards of shared files.`,
	"storage_quota": `
Disk space for shards, used when storage = true.`,
	"bandwidth_rate": `
Bytes per second this relay can carry, advertised so clients weight their
paths. Guess low rather than high.`,
	"onion_key_rotation": `
How long an onion key is used before a new one replaces it.`,
	"onion_key_grace": `
How long a replaced onion key is still accepted, for clients with an older
descriptor. Shorter than onion_key_rotation.`,
	"shutdown_wait": `
How long the relay drains on SIGTERM or SIGINT before it closes: it takes no
new circuits or streams and leaves the network at once, and the streams it
carries have this long to finish. It closes sooner when none is left; a
second signal closes it at once. "0s" closes at once.`,
	"family": `
Node IDs of your other relays, so no client puts two of them on one circuit.
List this relay in theirs too.`,
	"contact": `
How to reach you about this relay (an email address, say). Public.`,
	"metrics_addr": `
Address (host:port) to serve Prometheus metrics on; "" turns metrics off.
Off loopback it needs metrics_public = true. Port 0 picks a free port and
logs it.`,
	"metrics_public": metricsPublicDoc,
	"max_memory": `
Memory for circuit and stream buffers; past it the relay refuses new
circuits rather than fail.`,
	"max_circuits": `
Most circuits open at once; past it new ones are refused. One client
address may hold an eighth of them and one relay's address half (at least
64 each), so no single peer can take them all.`,
	"dir_cache_refresh": `
A directory cache fetches each seed's consensus again when it stops being
fresh, but never sooner than this after the last fetch.`,
	"relay_bandwidth_rate": `
Most bytes per second the relay's links read, and the most they write
(torrc's RelayBandwidthRate): clients, relays and directory answers all
count. 0 is no cap; otherwise at least 75KiB. Circuits share it in turn.
The descriptor then advertises the lower of this and bandwidth_rate.
A reload (SIGHUP) applies a new cap at once.`,
	"relay_bandwidth_burst": `
Token bucket size for relay_bandwidth_rate, each way (torrc's
RelayBandwidthBurst): how much may pass at once after a quiet spell. At
least the rate; 0 means the rate.`,
	"accounting_max": `
Most bytes per accounting period (torrc's AccountingMax). Once spent, the
relay hibernates: it leaves the network (drops out of the consensus),
refuses new circuits and streams, lets its open circuits finish, and comes
back when the next period begins. 0 turns accounting off. What was spent
is kept in data_dir, so a restart does not reset it.`,
	"accounting_start": `
When each accounting period begins, in local time (torrc's
AccountingStart): "day HH:MM", "week D HH:MM" (D 1 = Monday to 7 = Sunday)
or "month D HH:MM" (D 1 to 28).`,
	"accounting_rule": `
How bytes count against accounting_max (torrc's AccountingRule): "max"
(sent and received each up to it), "sum" (the two together), "in" (only
received) or "out" (only sent).`,
	"dir_cache_seed": `
Seeds whose signed consensus this relay mirrors for clients, one
[[dir_cache_seed]] table each, as in a client's [[seed]] tables: clients
then fetch the directory from their guard instead of from the seeds, so the
seeds do not see them. Documents are checked against the identity given,
never served older than one served before, and kept in data_dir. None: this
relay is no directory cache and clients use the seeds.`,
	"dir_cache_seed.name": `
A name for the seed in messages: 1 to 19 letters and digits.`,
	"dir_cache_seed.dir_url": `
The seed's directory address (its dir_addr), as http://host:port.`,
	"dir_cache_seed.identity": `
The seed's node ID: 52 characters of a-z and 2-7, printed when it starts.`,
}

var clientDocs = map[string]string{
	"socks_addr": `
Address (host:port) of the SOCKS5 proxy. Anyone who can reach it can use
your circuits, so keep it on loopback. Port 0 picks a free port and logs it.`,
	"consensus_refresh": `
The client fetches a new consensus when the current one stops being fresh,
but never sooner than this after the last fetch. Seeds sign every minute;
an hour keeps a client's directory traffic small on a large network while
its documents stay valid for three.`,
	"circuit_pool": `
Circuits kept built and ready, so new connections start at once (1 to 64).`,
	"guard_lifetime": `
How long the client keeps its entry guard before choosing another.`,
	"local_testnet": `
Set to true only for a network whose relays all run on one machine: paths
may then use several relays of one /16, which on a real network could let
one operator see both ends of a circuit.`,
	"circuit_lifetime": `
How long a circuit takes new connections before a fresh one is built.`,
	"metrics_addr": `
Address (host:port) to serve Prometheus metrics on; "" turns metrics off.
They show when and how much you use the proxy, so keep it on loopback. Port
0 picks a free port and logs it.`,
	"metrics_public": metricsPublicDoc,
	"seed": `
The seeds you trust, one [[seed]] table each: a consensus is used only when
a majority of them signed it. Get each seed's identity from its operator.`,
	"seed.name": `
A name for the seed in messages: 1 to 19 letters and digits.`,
	"seed.dir_url": `
The seed's directory address (its dir_addr), as http://host:port.`,
	"seed.identity": `
The seed's node ID: 52 characters of a-z and 2-7, printed when it starts.`,
}

// templateExamples are shown, commented out, for arrays of tables whose
// default is empty.
var templateExamples = map[string]any{
	"seed": []SeedPin{{
		Name:     "seed1",
		DirURL:   "http://127.0.0.1:7080",
		Identity: "REPLACE-with-the-seed-node-ID",
	}},
	"dir_cache_seed": []SeedPin{{
		Name:     "seed1",
		DirURL:   "http://127.0.0.1:7080",
		Identity: "REPLACE-with-the-seed-node-ID",
	}},
}

var templateDocs = map[string]map[string]string{
	"seed":   withCommon(seedDocs, gossipDocs),
	"relay":  withCommon(relayDocs, gossipDocs),
	"client": withCommon(clientDocs),
}

func withCommon(docs ...map[string]string) map[string]string {
	all := maps.Clone(commonDocs)
	for _, d := range docs {
		maps.Copy(all, d)
	}
	return all
}
