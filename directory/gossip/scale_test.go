package gossip

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// BenchmarkScale measures gossip at a real network's sizes with the LAN
// (internet) clock, N nodes in one process, all joining the first, with
// the directory's sizes: 52-byte names (node IDs), 197-byte pointers and
// 364-byte descriptors (directory/SPEC.md §2.2, §3). It runs only when
// VEIL_GOSSIP_SCALE lists the sizes (VEIL_GOSSIP_SCALE=100,300,1000): 1,000
// nodes take about ten minutes and a few GB. VEIL_GOSSIP_WINDOW sets the
// least quiet window (default 60s; at least one push/pull period).
// VEIL_GOSSIP_PROBE sets the probe interval (the probe timeout is half):
// one process with hundreds of nodes on a loaded machine cannot always
// answer probes within LAN's 1 s, and a node falsely declared dead
// refutes it with an alive message to everyone, which a loaded machine
// then answers more slowly still. VEIL_GOSSIP_HEAPPROFILE=path writes a
// heap profile of the converged cluster to path.N. VEIL_GOSSIP_RAMP=d
// starts the nodes d apart rather than at once: 1,000 nodes started at
// once bury a two-core machine in joins and fetches (a million TCP
// connections), where a real network grows a few relays at a time.
// Metrics, per node:
//
//   - s_to_members, s_to_converge: from starting the last node until
//     every node lists every other, and holds every other's descriptor
//     (NaN if that never held at one poll within 5 minutes: then the
//     log says who was missing where, and the run goes on);
//   - B/s, and of it pushpull_B/s and udp_B/s: bytes sent per second
//     over the quiet window, once gossip's queues have drained (settle_s);
//     udp_state_B/s is the part of udp_B/s that is suspect, alive and
//     dead messages (none in a calm cluster: false suspicions on a
//     loaded machine, and their refutations), the rest being probes;
//   - pushpull/h and pushpull_B: push/pulls each node starts per hour,
//     and the bytes of one (both directions);
//   - update_B, s_to_update: bytes each node sends for one descriptor
//     change somewhere (gossip of the new pointer plus fetches, beyond the
//     quiet rate), and the time until every node holds the new
//     descriptors (NaN if not within 30 s), with max(2, N/50) nodes
//     republishing at once;
//   - s_join_known, s_join_full: with the cluster quiet, one more node
//     joins; the time until every node holds its descriptor, and until
//     it holds every node's (NaN if not within 3 minutes); join_out_B is
//     what the newcomer sent meanwhile (its half of the join's push/pull
//     and its fetch requests);
//   - lost: the fewest members any node listed during the quiet window,
//     short of N-1 (a false death on a loaded machine).
func BenchmarkScale(b *testing.B) {
	sizes, err := scaleSizes(os.Getenv("VEIL_GOSSIP_SCALE"))
	if err != nil {
		b.Fatal(err)
	}
	if len(sizes) == 0 {
		b.Skip("set VEIL_GOSSIP_SCALE=100,300,1000 to run (minutes, GBs of memory)")
	}
	window := time.Minute
	if w := os.Getenv("VEIL_GOSSIP_WINDOW"); w != "" {
		if window, err = time.ParseDuration(w); err != nil {
			b.Fatal(err)
		}
	}
	var ramp time.Duration
	if r := os.Getenv("VEIL_GOSSIP_RAMP"); r != "" {
		if ramp, err = time.ParseDuration(r); err != nil {
			b.Fatal(err)
		}
	}
	timing := LAN()
	if p := os.Getenv("VEIL_GOSSIP_PROBE"); p != "" {
		if timing.ProbeInterval, err = time.ParseDuration(p); err != nil {
			b.Fatal(err)
		}
		timing.ProbeTimeout = timing.ProbeInterval / 2
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var sum scaleResult
			for range b.N {
				r := runScale(b, n, timing, window, ramp)
				sum.add(r)
			}
			sum.report(b, float64(b.N))
		})
	}
}

func scaleSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 2 || n > MaxMembers {
			return nil, fmt.Errorf("VEIL_GOSSIP_SCALE: %q is not a size in 2..%d", f, MaxMembers)
		}
		out = append(out, n)
	}
	return out, nil
}

const (
	scalePointerSize = 197 // directory/SPEC.md §3: node-ID name, IPv4 address
	scaleDescSize    = 364 // directory/SPEC.md §2.2: a middle relay
	scaleSettleMax   = 5 * time.Minute
	scaleConvergeMax = 5 * time.Minute
	scaleJoinMax     = 3 * time.Minute
	scaleUpdateSpan  = 30 * time.Second // bytes of an update are counted over this
)

type scaleResult struct {
	members, converge, settle, update        float64 // seconds
	joinKnown, joinFull                      float64 // seconds
	joinOutB                                 float64 // bytes the newcomer sent while joining
	rate, pushPullRate, udpRate              float64 // bytes per node per second
	udpStateRate                             float64 // of udpRate, suspect, alive and dead messages
	pushPullsPerHour, pushPullBytes, updateB float64
	lost                                     float64
}

func (s *scaleResult) add(r scaleResult) {
	s.members += r.members
	s.converge += r.converge
	s.settle += r.settle
	s.update += r.update
	s.joinKnown += r.joinKnown
	s.joinFull += r.joinFull
	s.joinOutB += r.joinOutB
	s.rate += r.rate
	s.pushPullRate += r.pushPullRate
	s.udpRate += r.udpRate
	s.udpStateRate += r.udpStateRate
	s.pushPullsPerHour += r.pushPullsPerHour
	s.pushPullBytes += r.pushPullBytes
	s.updateB += r.updateB
	s.lost += r.lost
}

func (s *scaleResult) report(b *testing.B, runs float64) {
	b.ReportMetric(s.members/runs, "s_to_members")
	b.ReportMetric(s.converge/runs, "s_to_converge")
	b.ReportMetric(s.settle/runs, "settle_s")
	b.ReportMetric(s.rate/runs, "B/s")
	b.ReportMetric(s.pushPullRate/runs, "pushpull_B/s")
	b.ReportMetric(s.udpRate/runs, "udp_B/s")
	b.ReportMetric(s.udpStateRate/runs, "udp_state_B/s")
	b.ReportMetric(s.pushPullsPerHour/runs, "pushpull/h")
	b.ReportMetric(s.pushPullBytes/runs, "pushpull_B")
	b.ReportMetric(s.updateB/runs, "update_B")
	b.ReportMetric(s.update/runs, "s_to_update")
	b.ReportMetric(s.joinKnown/runs, "s_join_known")
	b.ReportMetric(s.joinFull/runs, "s_join_full")
	b.ReportMetric(s.joinOutB/runs, "join_out_B")
	b.ReportMetric(s.lost/runs, "lost")
	b.ReportMetric(0, "ns/op") // one run takes minutes; the time says nothing
}

func scaleName(i int) string { return fmt.Sprintf("node%048d", i) } // 52 bytes, as a node ID

func scaleDescriptor(name string, seq uint64) []byte {
	d := bytes.Repeat([]byte{'d'}, scaleDescSize)
	copy(d, fmt.Sprintf("descriptor of %s, sequence %d", name, seq))
	return d
}

// scaleUpdateMark is in the padding of every pointer after the first
// (sequence 2 and up), so that the gossip of updates can be told from
// the rest (traffic.udpNew).
var scaleUpdateMark = bytes.Repeat([]byte{'u'}, 32)

func scalePointer(name string, seq uint64, desc []byte) []byte {
	p := fakePointer(name, seq, desc)
	pad := byte('p')
	if seq > 1 {
		pad = scaleUpdateMark[0]
	}
	return append(append(p, ':'), bytes.Repeat([]byte{pad}, scalePointerSize-len(p)-1)...)
}

// readiness counts, for node n, the alive members and those whose held
// descriptor has the sequence in seq.
func readiness(n *Node, seq map[string]uint64) (alive, current int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.peers {
		if p.alive {
			alive++
			if p.desc != nil && p.info.Seq == seq[p.name] {
				current++
			}
		}
	}
	return alive, current
}

// scaleMissing describes the members some nodes do not hold as alive with
// a current descriptor: how many, the worst few, and how memberlist sees
// the worst one from a node that misses it.
func scaleMissing(nodes []*Node, seq map[string]uint64) string {
	miss := make(map[string]int)
	for _, n := range nodes {
		held := make(map[string]bool)
		n.mu.Lock()
		for _, p := range n.peers {
			if p.alive && p.desc != nil && p.info.Seq == seq[p.name] {
				held[p.name] = true
			}
		}
		n.mu.Unlock()
		for name := range seq {
			if name != n.name && !held[name] {
				miss[name]++
			}
		}
	}
	worst, most := "", 0
	for name, k := range miss {
		if k > most {
			worst, most = name, k
		}
	}
	if worst == "" {
		return "none missing now"
	}
	state := "not in its memberlist"
	for _, n := range nodes {
		if n.name == worst || miss[worst] == 0 {
			continue
		}
		n.mu.Lock()
		p := n.peers[worst]
		if p != nil {
			state = fmt.Sprintf("in its table: alive %v, descriptor %v, fetch attempts %d, given up %v",
				p.alive, p.desc != nil, p.attempts, p.gaveUp)
		}
		n.mu.Unlock()
		if p == nil || !p.alive || p.desc == nil {
			break
		}
	}
	return fmt.Sprintf("%d members missing somewhere; %s missing at %d nodes (%s)", len(miss), worst, most, state)
}

// scaleLog logs to the benchmark and at once to stderr: the benchmark's
// log is printed only when a size finishes, and a run that takes an hour
// on a loaded machine should leave what it measured even if stopped.
func scaleLog(b *testing.B, format string, args ...any) {
	b.Helper()
	b.Logf(format, args...)
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// scaleHeapProfile writes a heap profile of the converged cluster.
func scaleHeapProfile(b *testing.B, path string) {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	scaleLog(b, "heap in use %d MB; profile in %s", ms.HeapInuse>>20, path)
}

func runScale(b *testing.B, count int, timing Timing, window, ramp time.Duration) scaleResult {
	var c traffic
	nodes := make([]*Node, 0, count)
	seq := make(map[string]uint64, count)
	defer func() {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(func() { _ = n.Close() })
		}
		wg.Wait()
	}()
	begin := time.Now()
	for i := range count {
		name := scaleName(i)
		desc := scaleDescriptor(name, 1)
		var join []string
		if i > 0 {
			join = []string{nodes[0].Addr().String()}
		}
		cfg := testConfig(name, 1, join...)
		cfg.Timing = timing
		cfg.Descriptor = desc
		cfg.Pointer = scalePointer(name, 1, desc)
		cfg.wrapTransport = func(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
			return newCountingTransport(t, &c)
		}
		n, err := Start(b.Context(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, n)
		seq[name] = 1
		time.Sleep(ramp)
	}
	// Convergence counts from the last start: with a ramp, the first
	// nodes converge among themselves while the last ones are still
	// to come.
	begin = time.Now()
	// state returns the fewest alive members and current descriptors any
	// node holds.
	state := func() (minAlive, minCurrent int) {
		minAlive, minCurrent = count, count
		for _, n := range nodes {
			a, d := readiness(n, seq)
			minAlive, minCurrent = min(minAlive, a), min(minCurrent, d)
		}
		return minAlive, minCurrent
	}
	r := scaleResult{members: math.NaN(), converge: math.NaN()}
	deadline := begin.Add(scaleConvergeMax)
	for {
		a, d := state()
		if math.IsNaN(r.members) && a == count-1 {
			r.members = time.Since(begin).Seconds()
		}
		if d == count-1 {
			r.converge = time.Since(begin).Seconds()
			break
		}
		if time.Now().After(deadline) {
			// Go on measuring: on a loaded machine a few members may be
			// suspected or declared dead at any moment, which is part of
			// what gossip costs there. Say who is missing where.
			scaleLog(b, "N=%d: not converged after %v: fewest members %d, fewest descriptors %d; %s",
				count, scaleConvergeMax, a, d, scaleMissing(nodes, seq))
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !math.IsNaN(r.converge) {
		scaleLog(b, "N=%d: converged after %.1f s", count, r.converge)
	}

	// Settle: the join storm leaves alive messages queued for retransmission;
	// wait until the UDP rate over 10 s stops falling.
	settleStart := time.Now()
	const step = 10 * time.Second
	prev := -1.0
	for time.Since(settleStart) < scaleSettleMax {
		u0 := c.udp.Load()
		time.Sleep(step)
		u := float64(c.udp.Load()-u0) / float64(count) / step.Seconds()
		if prev >= 0 && u > 0.9*prev {
			break
		}
		prev = u
	}
	r.settle = time.Since(settleStart).Seconds()

	if f := os.Getenv("VEIL_GOSSIP_HEAPPROFILE"); f != "" {
		scaleHeapProfile(b, fmt.Sprintf("%s.%d", f, count))
	}

	// Quiet window: at least one push/pull period, since every node
	// started its push/pull timer at about the same time and would
	// otherwise be counted in or out together.
	window = max(window, timing.pushPullPeriod(count))
	t0, udp0, st0, pp0, ex0 := c.sent(), c.udp.Load(), c.udpState.Load(), c.pushPull.Load(), c.exchange.Load()
	quietStart := time.Now()
	minAlive := count - 1
	for time.Since(quietStart) < window {
		time.Sleep(min(5*time.Second, window-time.Since(quietStart)))
		a, _ := state()
		minAlive = min(minAlive, a)
	}
	secs := time.Since(quietStart).Seconds()
	per := float64(count) * secs
	r.rate = float64(c.sent()-t0) / per
	r.udpRate = float64(c.udp.Load()-udp0) / per
	r.udpStateRate = float64(c.udpState.Load()-st0) / per
	r.pushPullRate = float64(c.pushPull.Load()-pp0) / per
	exchanges := float64(c.exchange.Load() - ex0)
	r.pushPullsPerHour = exchanges / per * 3600
	if exchanges > 0 {
		r.pushPullBytes = float64(c.pushPull.Load()-pp0) / exchanges
	}
	r.lost = float64(count - 1 - minAlive)
	scaleLog(b, "N=%d: quiet %.0f B/node/s (push/pull %.0f, UDP %.0f of which suspect/alive/dead %.0f), %.0f push/pulls of %.0f B",
		count, r.rate, r.pushPullRate, r.udpRate, r.udpStateRate, exchanges, r.pushPullBytes)

	// Updates: k nodes republish at once. Their cost is the alive
	// messages carrying the new pointers that the cluster sends over
	// scaleUpdateSpan plus the fetches; probes, false suspicions and the
	// push/pulls that happen to run meanwhile are left out.
	k := max(2, count/50)
	new0, fu0, ft0 := c.udpNew.Load(), c.udpUser.Load(), c.tcpUser.Load()
	updStart := time.Now()
	var wg sync.WaitGroup
	updated := make(map[string]bool, k)
	for i := 1; i <= k; i++ {
		n := nodes[i*(count-1)/k]
		desc := scaleDescriptor(n.Name(), 2)
		seq[n.Name()] = 2
		updated[n.Name()] = true
		wg.Go(func() {
			if err := n.UpdateSelf(scalePointer(n.Name(), 2, desc), desc); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	// spread is the fewest of the updated descriptors any node holds.
	spread := func() int {
		fewest := k
		for _, n := range nodes {
			held := 0
			n.mu.Lock()
			for name := range updated {
				if p := n.peers[name]; name == n.name || (p != nil && p.desc != nil && p.info.Seq == 2) {
					held++
				}
			}
			n.mu.Unlock()
			fewest = min(fewest, held)
		}
		return fewest
	}
	r.update = math.NaN()
	for time.Since(updStart) < scaleUpdateSpan {
		if math.IsNaN(r.update) && spread() == k {
			r.update = time.Since(updStart).Seconds()
		}
		time.Sleep(250 * time.Millisecond)
	}
	span := time.Since(updStart).Seconds()
	if math.IsNaN(r.update) {
		scaleLog(b, "N=%d: after %.0f s some node holds only %d of the %d new descriptors; %s",
			count, span, spread(), k, scaleMissing(nodes, seq))
	}
	udpExtra := float64(c.udpNew.Load() - new0)
	fetch := float64(c.udpUser.Load() - fu0 + c.tcpUser.Load() - ft0)
	r.updateB = (udpExtra + fetch) / float64(k) / float64(count)
	scaleLog(b, "N=%d: %d updates everywhere after %.1f s; per update per node %.0f B (gossip %.0f, fetch %.0f)",
		count, k, r.update, r.updateB, udpExtra/float64(k*count), fetch/float64(k*count))

	// Join: one more node joins the running cluster through the first.
	name := scaleName(count)
	desc := scaleDescriptor(name, 1)
	cfg := testConfig(name, 1, nodes[0].Addr().String())
	cfg.Timing = timing
	cfg.Descriptor = desc
	cfg.Pointer = scalePointer(name, 1, desc)
	var joined traffic
	cfg.wrapTransport = func(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
		return newCountingTransport(t, &joined)
	}
	joinStart := time.Now()
	newcomer, err := Start(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	nodes = append(nodes, newcomer)
	r.joinKnown, r.joinFull = math.NaN(), math.NaN()
	for time.Since(joinStart) < scaleJoinMax && (math.IsNaN(r.joinKnown) || math.IsNaN(r.joinFull)) {
		if math.IsNaN(r.joinKnown) {
			known := true
			for _, n := range nodes[:count] {
				n.mu.Lock()
				p := n.peers[name]
				known = known && p != nil && p.alive && p.desc != nil
				n.mu.Unlock()
			}
			if known {
				r.joinKnown = time.Since(joinStart).Seconds()
			}
		}
		if _, d := readiness(newcomer, seq); math.IsNaN(r.joinFull) && d == count {
			r.joinFull = time.Since(joinStart).Seconds()
		}
		time.Sleep(250 * time.Millisecond)
	}
	r.joinOutB = float64(joined.sent())
	scaleLog(b, "N=%d: a newcomer's descriptor was everywhere after %.1f s, it held every descriptor after %.1f s, it sent %.0f B (push/pull %d, fetch requests %d)",
		count, r.joinKnown, r.joinFull, r.joinOutB, joined.pushPull.Load(), joined.udpUser.Load()+joined.tcpUser.Load())
	return r
}
