package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"veil/directory"
	"veil/relay/path"
	"veil/shard"
)

// dest is where simulated streams go: an address every exit's default
// policy allows.
var dest = path.Destination{Addr: netip.MustParseAddr("93.184.216.34"), Port: 443}

// estimate is a measured probability: the mean of n trials, each a
// probability in [0, 1] (a hit is 1), with the sum of their squares for
// the standard error.
type estimate struct {
	sum, sumSq float64
	n          int
}

func (e estimate) p() float64 { return e.sum / float64(e.n) }

// se is the standard error of p; with no hit it is taken as if there
// had been one, so that "0 of n" still says how small p may be.
func (e estimate) se() float64 {
	n := float64(e.n)
	v := max(e.sumSq/n-e.p()*e.p(), 0)
	if e.sum == 0 {
		v = 1 / n
	}
	return math.Sqrt(v / n)
}

func (e estimate) String() string { return fmt.Sprintf("%.4f ±%.4f", e.p(), 2*e.se()) }

// client is one simulated client: a Selector of its own, deterministic
// randomness, and a clock the simulation moves.
type client struct {
	sel *path.Selector
	now time.Time
	rng *rand.Rand
}

// guardLifetime is the clients' guard_lifetime (-guard-lifetime); 0 is
// path.DefaultGuardLifetime, which is conf's default.
var guardLifetime time.Duration

func newClient(seed uint64, i int, vanguards bool) *client {
	var s [32]byte
	for j := range 8 {
		s[j] = byte(seed >> (8 * j))
		s[8+j] = byte(uint64(i) >> (8 * j))
	}
	c := &client{now: t0}
	c.rng = rand.New(rand.NewChaCha8(s))
	s[31] = 1 // the selector's stream apart from the simulation's
	sel, err := path.NewSelector(path.Options{Rand: rand.NewChaCha8(s), Now: func() time.Time { return c.now },
		GuardLifetime: guardLifetime, NoVanguards: !vanguards})
	if err != nil {
		panic(err) // no data dir: cannot fail
	}
	c.sel = sel
	return c
}

// parallel runs f(i) for i in [0, n) on every CPU and averages the
// results. Each trial's randomness comes from its index, so the result
// does not depend on which goroutine ran it.
func parallel(n int, f func(i int) float64) estimate {
	var next atomic.Int64
	var mu sync.Mutex
	var e estimate
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sum, sumSq float64
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					break
				}
				x := f(i)
				sum += x
				sumSq += x * x
			}
			mu.Lock()
			e.sum += sum
			e.sumSq += sumSq
			mu.Unlock()
		}()
	}
	wg.Wait()
	e.n = n
	return e
}

// hit is a trial's result when it is an event.
func hit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// exitDraws is how many circuits a trial of perCircuit draws once its
// guard is the adversary's.
const exitDraws = 8

// perCircuit is P(one circuit has guard and exit compromised) for a new
// client: each trial is a client whose guard path.Selector.Guard draws.
// A circuit through an honest guard is not compromised; through the
// adversary's, the trial draws exitDraws circuits with Path and counts the
// part whose exit is the adversary's too, which is P(exit | that guard)
// measured, so each trial gives 1{guard} × P(exit | guard), whose mean is
// P(circuit) with less noise than one circuit a trial.
func perCircuit(n *network, seed uint64, trials int) estimate {
	return parallel(trials, func(i int) float64 {
		c := newClient(seed, i, true)
		g, err := c.sel.Guard(n.view)
		if err != nil {
			panic(err)
		}
		if !n.adv[g.Descriptor] {
			return 0
		}
		exits := 0
		for range exitDraws {
			hops, err := c.sel.Path(n.view, dest)
			if err != nil {
				panic(err)
			}
			if n.adv[hops[2].Descriptor] {
				exits++
			}
		}
		return float64(exits) / exitDraws
	})
}

// usage is how a simulated client uses the network: sessions a day, each
// some circuits (a circuit serves new streams for 10 minutes).
const (
	days               = 30
	sessionsPerDay     = 3
	circuitsPerSession = 3
	circuitLifetime    = 10 * time.Minute
)

// month is P(a client is compromised at least once in 30 days): a new
// client at t0 builds circuitsPerSession circuits, 10 minutes apart, in
// each of sessionsPerDay sessions a day at random times, and is
// compromised by the first circuit with guard and exit compromised. Its
// Selector keeps its guards for their (random) lifetime as a real client
// does. Only a circuit whose guard is the adversary's can be compromised,
// so the exit is drawn (Path) only then: Path changes no state but the
// guard's, which Guard has already brought up to date.
func month(n *network, seed uint64, trials int) estimate {
	return parallel(trials, func(i int) float64 {
		c := newClient(seed, i, true)
		for d := range days {
			for range sessionsPerDay {
				start := t0.Add(time.Duration(d)*24*time.Hour + time.Duration(c.rng.Int64N(int64(24*time.Hour-circuitsPerSession*circuitLifetime))))
				for j := range circuitsPerSession {
					c.now = start.Add(time.Duration(j) * circuitLifetime)
					g, err := c.sel.Guard(n.view)
					if err != nil {
						panic(err)
					}
					if !n.adv[g.Descriptor] {
						continue
					}
					hops, err := c.sel.Path(n.view, dest)
					if err != nil {
						panic(err)
					}
					if n.adv[hops[2].Descriptor] {
						return 1
					}
				}
			}
		}
		return 0
	})
}

// shards is how many circuits a share of size bytes takes: one per shard,
// data, manifest and head replicas (shard.Params.StoredSize), with the
// code a network of this size uses (DefaultParams), and the shards per
// segment.
func shards(size int64) (total, perSegment int) {
	p := shard.DefaultParams
	return int(p.StoredSize(size) / int64(p.ShardSize())), p.N()
}

// exposure is P(the sharer's guard is exposed by one share of size
// bytes): the adversary holds the middle and the storage relay of some
// circuit of the share. Each trial is a new client; placement is as
// shard.Place makes it, each segment's shards on distinct storage relays
// drawn uniformly (a keyed hash with a fresh key per share), and each
// shard's circuit is path.Selector.PathTo. A circuit to an honest storage
// relay cannot expose the guard, so only those to the adversary's are
// built.
func exposure(n *network, seed uint64, trials int, size int64, vanguards bool) estimate {
	total, per := shards(size)
	return parallel(trials, func(i int) float64 {
		c := newClient(seed, i, vanguards)
		for done := 0; done < total; done += per {
			k := min(per, total-done)
			// k distinct storage relays, uniformly.
			idx := make([]int, 0, k)
			picked := map[int]bool{}
			for len(idx) < k {
				j := c.rng.IntN(len(n.storage))
				if !picked[j] {
					picked[j] = true
					idx = append(idx, j)
				}
			}
			for _, j := range idx {
				last := n.storage[j]
				if !n.adv[last.Descriptor] {
					continue
				}
				hops, err := c.sel.PathTo(n.view, last)
				if err != nil {
					continue // the storage relay is the guard's neighbour: no circuit
				}
				if n.adv[hops[1].Descriptor] {
					return 1
				}
			}
		}
		return 0
	})
}

// shares of the adversary in the view: by position weight (path's draws),
// by raw bandwidth among Guard and Exit relays (what its bandwidth
// predicts), and of the storage relays by count (placement).
type shares struct {
	pos               path.Shares
	guardBW, exitBW   float64
	storage, relays   float64
	bandwidth         float64
	advRelays, honest int
}

func measureShares(n *network) shares {
	var sh shares
	sh.pos = path.PositionShares(n.view, t0, func(e directory.Entry) bool { return n.adv[e.Descriptor] })
	var g, ga, x, xa, all, alla float64
	var st, sta int
	for _, e := range n.view.Relays {
		bw, adv := float64(e.Weight), n.adv[e.Descriptor]
		if adv {
			sh.advRelays++
			alla += bw
		} else {
			sh.honest++
		}
		all += bw
		if e.Flags&directory.FlagGuard != 0 {
			g += bw
			if adv {
				ga += bw
			}
		}
		if e.Flags&directory.FlagExit != 0 {
			x += bw
			if adv {
				xa += bw
			}
		}
		if e.Flags&directory.FlagStorage != 0 {
			st++
			if adv {
				sta++
			}
		}
	}
	sh.guardBW, sh.exitBW, sh.bandwidth = ga/g, xa/x, alla/all
	sh.storage = float64(sta) / float64(st)
	sh.relays = float64(sh.advRelays) / float64(sh.advRelays+sh.honest)
	return sh
}
