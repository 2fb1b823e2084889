package gossip

import (
	"bytes"
	"fmt"
	"os"
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
// least quiet window (default 60s; at least one push/pull period). Metrics, per node:
//
//   - s_to_members, s_to_converge: from starting the first node until
//     every node lists every other, and holds every other's descriptor;
//   - B/s, and of it pushpull_B/s and udp_B/s: bytes sent per second
//     over the quiet window, once gossip's queues have drained (settle_s);
//   - pushpull/h and pushpull_B: push/pulls each node starts per hour,
//     and the bytes of one (both directions);
//   - update_B, s_to_update: bytes each node sends for one descriptor
//     change somewhere (gossip of the new pointer plus fetches, beyond the
//     quiet rate), and the time until every node holds the new
//     descriptors, with max(2, N/50) nodes republishing at once;
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
	for _, n := range sizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var sum scaleResult
			for range b.N {
				r := runScale(b, n, LAN(), window)
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
	scaleUpdateSpan  = 30 * time.Second // bytes of an update are counted over this
)

type scaleResult struct {
	members, converge, settle, update        float64 // seconds
	rate, pushPullRate, udpRate              float64 // bytes per node per second
	pushPullsPerHour, pushPullBytes, updateB float64
	lost                                     float64
}

func (s *scaleResult) add(r scaleResult) {
	s.members += r.members
	s.converge += r.converge
	s.settle += r.settle
	s.update += r.update
	s.rate += r.rate
	s.pushPullRate += r.pushPullRate
	s.udpRate += r.udpRate
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
	b.ReportMetric(s.pushPullsPerHour/runs, "pushpull/h")
	b.ReportMetric(s.pushPullBytes/runs, "pushpull_B")
	b.ReportMetric(s.updateB/runs, "update_B")
	b.ReportMetric(s.update/runs, "s_to_update")
	b.ReportMetric(s.lost/runs, "lost")
	b.ReportMetric(0, "ns/op") // one run takes minutes; the time says nothing
}

func scaleName(i int) string { return fmt.Sprintf("node%048d", i) } // 52 bytes, as a node ID

func scaleDescriptor(name string, seq uint64) []byte {
	d := bytes.Repeat([]byte{'d'}, scaleDescSize)
	copy(d, fmt.Sprintf("descriptor of %s, sequence %d", name, seq))
	return d
}

func scalePointer(name string, seq uint64, desc []byte) []byte {
	p := fakePointer(name, seq, desc)
	return append(append(p, ':'), bytes.Repeat([]byte{'p'}, scalePointerSize-len(p)-1)...)
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

func runScale(b *testing.B, count int, timing Timing, window time.Duration) scaleResult {
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
	}
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
	var r scaleResult
	deadline := begin.Add(15 * time.Minute)
	for {
		a, d := state()
		if r.members == 0 && a == count-1 {
			r.members = time.Since(begin).Seconds()
		}
		if d == count-1 {
			r.converge = time.Since(begin).Seconds()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d nodes did not converge within %v: fewest members %d, fewest descriptors %d", count, deadline.Sub(begin), a, d)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if r.members == 0 {
		r.members = r.converge
	}
	b.Logf("N=%d: converged after %.1f s", count, r.converge)

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

	// Quiet window: at least one push/pull period, since every node
	// started its push/pull timer at about the same time and would
	// otherwise be counted in or out together.
	window = max(window, timing.pushPullPeriod(count))
	t0, udp0, pp0, ex0 := c.sent(), c.udp.Load(), c.pushPull.Load(), c.exchange.Load()
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
	r.pushPullRate = float64(c.pushPull.Load()-pp0) / per
	exchanges := float64(c.exchange.Load() - ex0)
	r.pushPullsPerHour = exchanges / per * 3600
	if exchanges > 0 {
		r.pushPullBytes = float64(c.pushPull.Load()-pp0) / exchanges
	}
	r.lost = float64(count - 1 - minAlive)
	b.Logf("N=%d: quiet %.0f B/node/s (push/pull %.0f, UDP %.0f), %.0f push/pulls of %.0f B", count, r.rate, r.pushPullRate, r.udpRate, exchanges, r.pushPullBytes)

	// Updates: k nodes republish at once. Their cost is what the cluster
	// sends beyond the quiet rates over scaleUpdateSpan, less the
	// push/pulls that happened to run meanwhile (counted apart).
	k := max(2, count/50)
	udpQuiet := r.udpRate
	u0, all0, pp1 := c.udp.Load(), c.sent(), c.pushPull.Load()
	updStart := time.Now()
	var wg sync.WaitGroup
	for i := 1; i <= k; i++ {
		n := nodes[i*(count-1)/k]
		desc := scaleDescriptor(n.Name(), 2)
		seq[n.Name()] = 2
		wg.Go(func() {
			if err := n.UpdateSelf(scalePointer(n.Name(), 2, desc), desc); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	for {
		if _, d := state(); d == count-1 {
			r.update = time.Since(updStart).Seconds()
			break
		}
		if time.Since(updStart) > 5*time.Minute {
			_, d := state()
			b.Fatalf("N=%d: updates not everywhere after 5 minutes: fewest current descriptors %d", count, d)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if rest := scaleUpdateSpan - time.Since(updStart); rest > 0 {
		time.Sleep(rest)
	}
	span := time.Since(updStart).Seconds()
	all := float64(c.sent() - all0)
	pp := float64(c.pushPull.Load() - pp1)
	udpExtra := float64(c.udp.Load()-u0) - udpQuiet*float64(count)*span
	other := all - pp - float64(c.udp.Load()-u0) // fetch requests and answers
	r.updateB = (udpExtra + other) / float64(k) / float64(count)
	b.Logf("N=%d: %d updates everywhere after %.1f s; per update per node %.0f B (gossip %.0f, fetch %.0f)",
		count, k, r.update, r.updateB, udpExtra/float64(k*count), other/float64(k*count))
	return r
}
