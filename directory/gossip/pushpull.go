package gossip

// Periodic push/pull (SPEC.md §4). memberlist's own timer is off
// (PushPullInterval 0 in its config): it stretches the interval only
// logarithmically with the cluster, while an exchange carries every
// member, so a node's bytes would grow as n / log n. This loop runs the
// same exchange, with a period from Timing.pushPullPeriod.

import (
	"math/rand/v2"
	"time"
)

func (n *Node) pushPullLoop() {
	defer n.wg.Done()
	for {
		// Jittered to [p/2, 3p/2), mean p: nodes started together (a
		// testnet, a benchmark) do not exchange in step.
		p := n.timing.pushPullPeriod(n.ml.NumMembers())
		if !n.sleep(p/2 + rand.N(p)) {
			return
		}
		if n.left.Load() {
			continue // memberlist would refuse our own state after Leave anyway
		}
		n.pushPull()
	}
}

// pushPull exchanges state with one alive member chosen at random, as
// memberlist's periodic push/pull does. memberlist exports the exchange
// only as Join, which marks it a join: the other side then also checks
// protocol versions and calls its MergeDelegate, as for any re-join.
func (n *Node) pushPull() {
	n.mu.Lock()
	var pick string
	seen := 0
	for _, p := range n.peers {
		if !p.alive {
			continue
		}
		// Reservoir sampling: a uniform choice without building a list.
		if seen++; rand.N(seen) == 0 {
			pick = p.addr.String()
		}
	}
	n.mu.Unlock()
	if pick == "" {
		return
	}
	start := time.Now()
	if _, err := n.ml.Join([]string{pick}); err != nil {
		n.log.Debug("gossip: push/pull failed", "addr", pick, "err", err)
		return
	}
	n.log.Debug("gossip: push/pull", "addr", pick, "took", time.Since(start))
}
