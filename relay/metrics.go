package relay

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"

	"veil/onion"
	"veil/relay/internal/procmetrics"
)

// counters are the relay's running totals for /metrics. They count
// events, never who or what: no addresses, no circuit IDs (a relay's
// metrics are often public).
type counters struct {
	created   atomic.Uint64 // circuits created here
	destroyed [onion.DestroyTampered + 1]atomic.Uint64
	extends   atomic.Uint64
	begins    atomic.Uint64
	refused   atomic.Uint64 // BEGINs refused (exit policy, resolution, connect)
	pings     atomic.Uint64 // PINGs answered (onion/SPEC.md §7.8)
	// refusedCreates counts CREATEs refused for a limit, by which
	// (createlimits.go).
	refusedCreates [numRefusals]atomic.Uint64
}

func (c *counters) destroyedFor(r onion.DestroyReason) {
	if int(r) < len(c.destroyed) {
		c.destroyed[r].Add(1)
	}
}

// writeMetrics writes the Prometheus text exposition format.
func (e *engine) writeMetrics(w io.Writer) {
	var cellsIn, cellsOut, queued uint64
	e.mem.mu.Lock()
	links := len(e.mem.links)
	for l := range e.mem.links {
		st := l.Stats()
		cellsIn += st.CellsIn
		cellsOut += st.CellsOut
		queued += uint64(st.Queued)
	}
	e.mem.mu.Unlock()
	circuits := 0
	seen := map[*relayCircuit]bool{}
	for _, c := range e.circs.all() {
		if !seen[c] {
			seen[c] = true
			circuits++
		}
	}
	metric := func(name, kind, help string, v uint64) { procmetrics.Metric(w, name, kind, help, v) }
	metric("veil_relay_links", "gauge", "Open links.", uint64(links))
	metric("veil_relay_circuits", "gauge", "Open circuits.", uint64(circuits))
	metric("veil_relay_cells_received_total", "counter", "Cells read on open links.", cellsIn)
	metric("veil_relay_cells_sent_total", "counter", "Cells written on open links.", cellsOut)
	metric("veil_relay_queued_cells", "gauge", "Cells waiting in link send queues.", queued)
	metric("veil_relay_circuits_created_total", "counter", "Circuits created at this relay.", e.stats.created.Load())
	metric("veil_relay_extends_total", "counter", "EXTENDs completed.", e.stats.extends.Load())
	metric("veil_relay_exit_streams_total", "counter", "Exit streams opened.", e.stats.begins.Load())
	metric("veil_relay_exit_streams_refused_total", "counter", "BEGINs refused.", e.stats.refused.Load())
	metric("veil_relay_pings_answered_total", "counter", "PINGs answered: clients checking that their path is alive.", e.stats.pings.Load())
	fmt.Fprintf(w, "# HELP veil_relay_circuits_destroyed_total Circuits destroyed, by reason.\n# TYPE veil_relay_circuits_destroyed_total counter\n")
	for r := range e.stats.destroyed {
		fmt.Fprintf(w, "veil_relay_circuits_destroyed_total{reason=%q} %d\n", onion.DestroyReason(r).String(), e.stats.destroyed[r].Load())
	}
	fmt.Fprintf(w, "# HELP veil_relay_creates_refused_total CREATEs refused with RESOURCELIMIT, by the limit reached: the relay's table, a peer's share or a peer's rate.\n# TYPE veil_relay_creates_refused_total counter\n")
	for why := range e.stats.refusedCreates {
		fmt.Fprintf(w, "veil_relay_creates_refused_total{limit=%q} %d\n", refusalNames[why], e.stats.refusedCreates[why].Load())
	}
	procmetrics.Write(w)
}

// serveMetrics serves /metrics on ln until ctx ends.
func (e *engine) serveMetrics(ctx context.Context, ln net.Listener) {
	procmetrics.Serve(ctx, ln, e.writeMetrics, e.log)
}
