// Package dos keeps any one peer from locking everyone else out of a
// relay's circuits (DESIGN.md G9). For each CREATE it decides whether the
// peer that sent it may open one more circuit: a peer holds at most a
// bounded share of the relay's open circuits, and opens them at a bounded
// rate with a burst, a token bucket. A CREATE past either limit is refused
// (the relay answers DESTROY with RESOURCELIMIT) and no other peer notices.
//
// The anchor is Tor's DoSCircuitCreation (dos-spec, "circuit creation
// mitigation"): a token bucket of CREATEs per client address, 3 a second
// with a burst of 90, applied to addresses with three connections or
// more, and relays in the consensus exempt. veil differs where its
// clients do: a share or fetch builds a fresh circuit per shard, 16 at a
// time (shard/transfer), so an honest client opens tens of circuits a
// second and Tor's rate would fail its transfers; and one link alone can
// hold thousands of circuits, so the number a peer holds is bounded too,
// which Tor leaves to its out-of-memory handler.
//
// # Peers
//
// A peer is a Key: the address its link comes from (an IPv4 address, or an
// IPv6 /64, since one host usually holds a whole /64 and could otherwise
// take a new address per link), and whether the link proved that it is a
// relay this relay knows. All clients behind one address share a key; so
// do all known relays at one address, apart from the clients there.
// Relays get a larger share, since a relay's link carries the circuits of
// many clients; a peer's certificate alone earns nothing, only membership
// of the relay's verified view does.
//
// # Limits
//
// Limits for max_circuits = 4096 (the default) are:
//
//	         share (open circuits)   rate     burst
//	client   512 (max_circuits/8)    100/s    1000
//	relay    2048 (max_circuits/2)   1000/s   10000
//
// with at least MinShare for small tables. The shares count circuits,
// while the relay-wide cap (2×max_circuits) counts hops, two per extended
// circuit: a client address can hold an eighth of the table at most, a
// relay address half. The rates bound the handshakes one address can make
// the relay compute (about 125 µs of CPU each): 100 a second is about 1 %
// of a core, well above the 16 circuits at a time of a share over the
// internet. A loopback peer has no rate limit: it runs on the relay's own
// host and could spend its CPU directly, and `veil testnet` runs every
// client on 127.0.0.1, whose shares of many MB build hundreds of circuits
// a second; the share still holds it.
//
// # Use
//
// Call Admit before spending anything on the handshake, then Hold the
// circuit it opens or Cancel the reservation. A held circuit counts
// against its peer until it reports itself Closed: the table looks when
// the peer is next at its share (at most every pruneEvery) and at each
// Sweep, so nothing has to tell it when a circuit ends.
package dos

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Limits are what one peer may ask of the relay.
type Limits struct {
	Share int     // open circuits at once
	Rate  float64 // CREATEs a second, sustained; 0 means no rate limit
	Burst int     // CREATEs at once after a quiet spell (the bucket's size)
}

const (
	// MinShare is the least share any peer gets, however small the
	// relay's table: a client keeps a few spare circuits and one per
	// isolated stream, and a testnet's clients share one address.
	MinShare = 64
	// ClientRate and ClientBurst bound a client address's CREATEs. An
	// honest share or fetch builds at most 16 circuits at a time, each
	// taking several round trips through three relays: tens a second over
	// the internet. The burst covers a share of about 70 MB at (10, 5)
	// without waiting on the rate.
	ClientRate  = 100
	ClientBurst = 1000
	// RelayRate and RelayBurst bound a known relay address's: its links
	// carry the circuits its clients extend, ten times a client's.
	RelayRate  = 10 * ClientRate
	RelayBurst = 10 * ClientBurst
	// quietAfter ends a peer's refusal burst: the first refusal after this
	// long without one is reported again (Admit's report), so a relay logs
	// once per burst, never per cell.
	quietAfter = time.Minute
	// pruneEvery bounds how often a peer at its share has its held
	// circuits checked for closed ones: a flood at the share is refused
	// without walking them each time, and an honest peer that reached it
	// waits at most this long to get closed circuits back.
	pruneEvery = 100 * time.Millisecond
)

// DefaultLimits returns the limits of a relay whose table holds
// maxCircuits circuits (conf.Relay.MaxCircuits).
func DefaultLimits(maxCircuits int) (client, relay Limits) {
	client = Limits{Share: max(MinShare, maxCircuits/8), Rate: ClientRate, Burst: ClientBurst}
	relay = Limits{Share: max(MinShare, maxCircuits/2), Rate: RelayRate, Burst: RelayBurst}
	return client, relay
}

// Key names a peer: see the package comment.
type Key struct {
	// Addr is the peer's address: a single IPv4 address, an IPv6 /64,
	// or a single loopback address. The zero Prefix holds every peer not
	// on TCP/IP.
	Addr netip.Prefix
	// Relay says the link proved it is a relay this relay knows.
	Relay bool
}

// KeyOf returns the key of a peer at a, a relay if relay.
func KeyOf(a net.Addr, relay bool) Key {
	k := Key{Relay: relay}
	if a == nil {
		return k
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return k
	}
	ip := ap.Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
		if ip.IsLoopback() {
			bits = 128 // ::1 alone, not the /64 it would share with ::
		}
	}
	k.Addr, _ = ip.Prefix(bits)
	return k
}

// loopback reports whether k is an address on the relay's own host.
func (k Key) loopback() bool { return k.Addr.IsValid() && k.Addr.Addr().IsLoopback() }

// Circuit is an open circuit as the table holds it.
type Circuit interface {
	// Closed reports whether the circuit has ended. The table calls it
	// with its lock held: it must not call back into the table.
	Closed() bool
}

// Verdict is Admit's answer.
type Verdict int

const (
	Admitted  Verdict = iota
	OverShare         // the peer holds its share of open circuits
	OverRate          // the peer's bucket is empty
)

func (v Verdict) String() string {
	switch v {
	case Admitted:
		return "admitted"
	case OverShare:
		return "share"
	case OverRate:
		return "rate"
	}
	return "unknown"
}

// Table holds every peer's circuits and bucket. Its methods are safe for
// concurrent use.
type Table struct {
	client, relay Limits

	mu    sync.Mutex // guards peers and every peer's fields
	peers map[Key]*peer
}

// peer is one Key's state.
type peer struct {
	// open holds the circuits held, some perhaps closed since (dropped by
	// prune); pending counts reservations neither held nor cancelled.
	open    []Circuit
	pending int
	pruned  time.Time
	// tokens is the bucket, full at the burst, as of filled.
	tokens float64
	filled time.Time
	// refused is when the last CREATE was refused (zero: never).
	refused time.Time
}

// New returns a table that gives clients and relays these limits. A share
// and a burst must be positive.
func New(client, relay Limits) *Table {
	for _, l := range []Limits{client, relay} {
		if l.Share <= 0 || l.Rate < 0 || l.Rate > 0 && l.Burst <= 0 {
			panic("dos: internal error: limits must be positive")
		}
	}
	return &Table{client: client, relay: relay, peers: map[Key]*peer{}}
}

// limits returns what k may do.
func (t *Table) limits(k Key) Limits {
	l := t.client
	if k.Relay {
		l = t.relay
	}
	if k.loopback() {
		l.Rate = 0
	}
	return l
}

// Reservation is an admitted CREATE: Hold the circuit it opens, or Cancel
// it, exactly once.
type Reservation struct {
	t *Table
	k Key
}

// Admit decides on one CREATE from k at now. Admitted takes a token and
// reserves a place in k's share until the Reservation is held or
// cancelled. A refusal takes nothing; report is true for the first
// refusal of a burst (none for quietAfter before it), for the caller to
// log once.
func (t *Table) Admit(k Key, now time.Time) (r Reservation, v Verdict, report bool) {
	lim := t.limits(k)
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[k]
	if p == nil {
		p = &peer{tokens: float64(lim.Burst), filled: now}
		t.peers[k] = p
	}
	if len(p.open)+p.pending >= lim.Share && now.Sub(p.pruned) >= pruneEvery {
		p.prune()
		p.pruned = now
	}
	switch {
	case len(p.open)+p.pending >= lim.Share:
		v = OverShare
	case lim.Rate > 0:
		p.refill(lim, now)
		if p.tokens < 1 {
			v = OverRate
			break
		}
		p.tokens--
	}
	if v != Admitted {
		report = p.refused.IsZero() || now.Sub(p.refused) >= quietAfter
		p.refused = now
		return Reservation{}, v, report
	}
	p.pending++
	return Reservation{t: t, k: k}, Admitted, false
}

// Hold counts c against the reservation's peer until c is Closed.
func (r Reservation) Hold(c Circuit) {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	p := r.t.peers[r.k]
	p.pending--
	p.open = append(p.open, c)
}

// Cancel gives the reserved place back: the circuit never opened. Its
// token stays spent, as the handshake's CPU does.
func (r Reservation) Cancel() {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	r.t.peers[r.k].pending--
}

// Sweep drops closed circuits, and forgets peers that hold none, have a
// full bucket and no refusal burst under way: they are as a new peer
// would be. Call it now and then (the relay does every few seconds) so
// the table stays as small as the set of peers with circuits.
func (t *Table) Sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, p := range t.peers {
		p.prune()
		p.pruned = now
		lim := t.limits(k)
		p.refill(lim, now)
		full := lim.Rate == 0 || p.tokens >= float64(lim.Burst)
		if len(p.open) == 0 && p.pending == 0 && full && now.Sub(p.refused) >= quietAfter {
			delete(t.peers, k)
		}
	}
}

// Open returns how many circuits k holds or has reserved, counting those
// closed since the last look.
func (t *Table) Open(k Key) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[k]; p != nil {
		return len(p.open) + p.pending
	}
	return 0
}

// Peers returns how many peers the table remembers.
func (t *Table) Peers() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.peers)
}

// prune drops closed circuits. Called with Table.mu held.
func (p *peer) prune() {
	live := p.open[:0]
	for _, c := range p.open {
		if !c.Closed() {
			live = append(live, c)
		}
	}
	clear(p.open[len(live):])
	p.open = live
}

// refill tops the bucket up for the time since it was last filled.
// Called with Table.mu held.
func (p *peer) refill(lim Limits, now time.Time) {
	// Callers read the clock before taking the lock, so now may be a
	// little behind filled: such a call adds nothing.
	if d := now.Sub(p.filled); d > 0 {
		p.tokens = min(float64(lim.Burst), p.tokens+d.Seconds()*lim.Rate)
		p.filled = now
	}
}
