package gossip

import (
	"math"
	"time"
)

// Timing holds memberlist's clock and this package's retry intervals. Zero
// fields take their value from LAN().
//
// How fast a crashed node is declared dead: some member probes it within
// about one ProbeInterval (every member probes one peer per interval), the
// probe and its indirect probes fail within that interval, the node is then
// suspected, and declared dead when its suspicion times out (see
// SuspicionTimeout); the verdict spreads within a few GossipIntervals. A
// node that leaves gracefully (Node.Leave) is known to have left as soon as
// its leave message spreads: a few GossipIntervals.
//
// Suspicion timeout (memberlist state.go and util.go): with n known nodes,
//
//	min = SuspicionMult × max(1, log10(n)) × ProbeInterval
//	max = SuspicionMaxTimeoutMult × min
//
// The timer starts at max and falls towards min as k = SuspicionMult-2
// other members independently confirm the suspicion; when k < 1 or n-2 < k
// it is min from the start.
//
//	preset  n    min      max      crash detected after, roughly
//	LAN     ≤10  4 s      24 s     5–7 s once 2 others confirm, else up to 26 s
//	LAN     50   6.8 s    40.8 s
//	LAN     100  8 s      48 s
//	Fast    ≤10  400 ms   = min    0.6–1 s (0.65 s measured with 4 nodes)
//	Fast    50   680 ms   = min
//	Fast    100  800 ms   = min
//
// Under load memberlist also stretches the probe interval up to 8× (its
// awareness multiplier), so these are figures for a healthy node.
type Timing struct {
	ProbeInterval           time.Duration // memberlist: one failure probe per interval
	ProbeTimeout            time.Duration // memberlist: wait for a direct ack
	SuspicionMult           int           // memberlist: see above
	SuspicionMaxTimeoutMult int           // memberlist: see above
	GossipInterval          time.Duration // memberlist: gossip to GossipNodes (3) members per interval
	PushPullInterval        time.Duration // full state exchange with one member per interval, scaled with size (pushPullPeriod)
	PushPullPerMember       time.Duration // this package: the push/pull period is at least this times the members known
	TCPTimeout              time.Duration // memberlist: dial and stream deadline; also bounds a descriptor fetch
	GossipToTheDeadTime     time.Duration // memberlist: how long dead nodes are gossiped about before being forgotten
	DeadNodeReclaimTime     time.Duration // memberlist: after this, a dead node's name may come back from a new address
	RejoinInterval          time.Duration // this package: how often to re-join members and seeds that are not alive
}

// LAN returns memberlist's DefaultLANConfig clock (1 s probes, suspicion of
// 4–8 s in the common case), plus:
//   - PushPullPerMember 150 ms: from about 1,400 members up, each node
//     starts a push/pull every n × 150 ms rather than memberlist's
//     30 s × (⌈log2 n − 5⌉ + 1), so the cluster as a whole runs about 6.7
//     full state exchanges a second whatever its size. An exchange carries
//     every member both ways (about 630 bytes each with the directory's
//     pointers), so a node spends about 2 × 630 B / 150 ms ≈ 4.2 KB/s on
//     them at any size, where memberlist's own scaling costs it 17 KB/s
//     at 7,000 members and grows without bound. Push/pull is the backstop
//     of gossip (which spreads a change in seconds): at 7,000 members a
//     node exchanges state every 17.5 minutes;
//   - DeadNodeReclaimTime 1 s: a relay that restarts on a new address is
//     admitted again a second after its old instance was declared dead,
//     rather than after GossipToTheDeadTime (memberlist's default refuses the
//     new address until then). This is safe because its pointer must bind
//     the new address to its identity (VerifyPointer);
//   - RejoinInterval 30 s, the same as the push/pull interval: cheap, and
//     heals a partition within a minute.
func LAN() Timing {
	return Timing{
		ProbeInterval:           time.Second,
		ProbeTimeout:            500 * time.Millisecond,
		SuspicionMult:           4,
		SuspicionMaxTimeoutMult: 6,
		GossipInterval:          200 * time.Millisecond,
		PushPullInterval:        30 * time.Second,
		PushPullPerMember:       150 * time.Millisecond,
		TCPTimeout:              10 * time.Second,
		GossipToTheDeadTime:     30 * time.Second,
		DeadNodeReclaimTime:     time.Second,
		RejoinInterval:          30 * time.Second,
	}
}

// Fast returns a clock for testnets and tests on one machine: 200 ms probes
// and suspicion of 400–800 ms, so a crashed node is declared dead in about
// a second. SuspicionMult 2 turns memberlist's confirmation scheme off
// (k = 0): the timeout is always min. It costs more bandwidth (see the
// package benchmark) and will declare a node dead that stalls for a second,
// so it is not for the internet. Dead nodes are gossiped about for 5 s, a
// restarted node's new address is accepted 100 ms after the old one is
// declared dead, and re-joins run every second. PushPullPerMember is LAN's
// scaled as PushPullInterval is (10 ms): below about 1,400 members it
// leaves memberlist's scaling in charge.
func Fast() Timing {
	return Timing{
		ProbeInterval:           200 * time.Millisecond,
		ProbeTimeout:            100 * time.Millisecond,
		SuspicionMult:           2,
		SuspicionMaxTimeoutMult: 3,
		GossipInterval:          50 * time.Millisecond,
		PushPullInterval:        2 * time.Second,
		PushPullPerMember:       10 * time.Millisecond,
		TCPTimeout:              time.Second,
		GossipToTheDeadTime:     5 * time.Second,
		DeadNodeReclaimTime:     100 * time.Millisecond,
		RejoinInterval:          time.Second,
	}
}

// withDefaults fills zero fields from LAN().
func (t Timing) withDefaults() Timing {
	d := LAN()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&t.ProbeInterval, d.ProbeInterval)
	set(&t.ProbeTimeout, d.ProbeTimeout)
	set(&t.GossipInterval, d.GossipInterval)
	set(&t.PushPullInterval, d.PushPullInterval)
	set(&t.PushPullPerMember, d.PushPullPerMember)
	set(&t.TCPTimeout, d.TCPTimeout)
	set(&t.GossipToTheDeadTime, d.GossipToTheDeadTime)
	set(&t.DeadNodeReclaimTime, d.DeadNodeReclaimTime)
	set(&t.RejoinInterval, d.RejoinInterval)
	if t.SuspicionMult <= 0 {
		t.SuspicionMult = d.SuspicionMult
	}
	if t.SuspicionMaxTimeoutMult <= 0 {
		t.SuspicionMaxTimeoutMult = d.SuspicionMaxTimeoutMult
	}
	return t
}

// SuspicionTimeout returns the range memberlist's suspicion timer takes
// with n known nodes (self included): the timer starts at max and falls to
// min as other members confirm the suspicion. Zero fields count as LAN().
func (t Timing) SuspicionTimeout(n int) (min, max time.Duration) {
	t = t.withDefaults()
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	// The same arithmetic as memberlist's suspicionTimeout (util.go).
	min = time.Duration(t.SuspicionMult) * time.Duration(scale*1000) * t.ProbeInterval / 1000
	k := t.SuspicionMult - 2
	if n-2 < k {
		k = 0
	}
	if k < 1 {
		return min, min
	}
	return min, time.Duration(t.SuspicionMaxTimeoutMult) * min
}

// pushPullPeriod is how often a node that knows n members (itself
// included) starts a push/pull: memberlist's own scaling of
// PushPullInterval (×(⌈log2 n − 5⌉ + 1) above 32 members; util.go
// pushPullScale), or n × PushPullPerMember if longer. An exchange costs
// both sides about n × (name + pointer + memberlist's fields) bytes, so
// with a period linear in n a node's push/pull bytes per second stop
// growing with the cluster; memberlist's logarithmic scaling alone
// leaves them growing as n / log n.
func (t Timing) pushPullPeriod(n int) time.Duration {
	p := t.PushPullInterval
	if n > pushPullScaleThreshold {
		p *= time.Duration(math.Ceil(math.Log2(float64(n))-math.Log2(pushPullScaleThreshold)) + 1)
	}
	return max(p, time.Duration(n)*t.PushPullPerMember)
}

// pushPullScaleThreshold is memberlist's: the size above which it
// stretches the push/pull interval.
const pushPullScaleThreshold = 32

// fetchBackoff is the wait before retry number attempt (1, 2, ...) of a
// descriptor fetch: ProbeInterval doubling, at most 8 ProbeIntervals.
func (t Timing) fetchBackoff(attempt int) time.Duration {
	d := t.ProbeInterval
	for i := 1; i < attempt && d < 8*t.ProbeInterval; i++ {
		d *= 2
	}
	return min(d, 8*t.ProbeInterval)
}

// joinBackoff bounds the initial join's retry delay: it starts at half a
// probe interval and doubles up to RejoinInterval.
func (t Timing) joinBackoff() (first, limit time.Duration) {
	return t.ProbeInterval / 2, t.RejoinInterval
}
