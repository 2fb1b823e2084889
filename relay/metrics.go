package relay

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"veil/directory/daemonmetrics"
	"veil/onion"
)

// counters are the relay's running totals for /metrics and the heartbeat.
// They count events, never who or what: no addresses, no circuit IDs (a
// relay's metrics are often public), and every label value comes from a
// fixed set.
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
	// handshakes counts CREATE handshakes answered, by outcome.
	handshakes [numHandshakeResults]atomic.Uint64
	// streams counts streams opened at this relay, by kind.
	streams [numStreamKinds]atomic.Uint64
	// createSeconds is how long a CREATE took to answer, limits and
	// handshake included; extendSeconds how long an EXTEND took from
	// its arrival to the EXTENDED sent back, the next relay's link and
	// CREATED included. Set by init.
	createSeconds, extendSeconds prometheus.Histogram
}

// handshakeResult is how a CREATE handshake ended, as the metrics count it.
type handshakeResult int

const (
	handshakeOK     handshakeResult = iota // answered with CREATED
	handshakeFailed                        // refused as malformed, replayed or for an unknown onion key
	numHandshakeResults
)

var handshakeNames = [numHandshakeResults]string{"ok", "failed"}

// streamKind is what a stream opened at this relay is for.
type streamKind int

const (
	streamExit    streamKind = iota // BEGIN: to the internet
	streamDir                       // BEGIN_DIR: the mirrored consensus
	streamStorage                   // BEGIN_STORE: the shard store
	numStreamKinds
)

var streamKindNames = [numStreamKinds]string{"exit", "directory", "storage"}

// Latency buckets. A CREATE is one X25519-and-ML-KEM handshake, well under
// a millisecond, unless the relay is overloaded; an EXTEND is a link to
// another relay (a TLS handshake when none is open) and a round trip,
// milliseconds on a LAN and up to extendTimeout on the internet.
var (
	createBuckets = prometheus.ExponentialBuckets(50e-6, 2, 14)   // 50 µs to 0.4 s
	extendBuckets = prometheus.ExponentialBuckets(0.001, 2.5, 12) // 1 ms to 24 s
)

// init makes the histograms; newEngine calls it.
func (c *counters) init() {
	c.createSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "veil_relay_create_seconds",
		Help:    "Time to answer a CREATE: the limits, the handshake and the CREATED queued.",
		Buckets: createBuckets,
	})
	c.extendSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "veil_relay_extend_seconds",
		Help:    "Time from an EXTEND to its EXTENDED: the link to the next relay and its CREATED.",
		Buckets: extendBuckets,
	})
}

func (c *counters) destroyedFor(r onion.DestroyReason) {
	if int(r) < len(c.destroyed) {
		c.destroyed[r].Add(1)
	}
}

// handshake counts one CREATE handshake that ended in r.
func (c *counters) handshake(r handshakeResult) { c.handshakes[r].Add(1) }

// streamOpened counts one stream of kind k.
func (c *counters) streamOpened(k streamKind) { c.streams[k].Add(1) }

// registerMetrics registers everything the relay exposes on reg.
func (e *engine) registerMetrics(reg prometheus.Registerer) {
	reg.MustRegister(e.stats.createSeconds, e.stats.extendSeconds, engineCollector{e})
	counter := func(name, help string, v *atomic.Uint64, labels prometheus.Labels) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(v.Load()) }))
	}
	counter("veil_relay_circuits_created_total", "Circuits created at this relay.", &e.stats.created, nil)
	counter("veil_relay_extends_total", "EXTENDs completed.", &e.stats.extends, nil)
	counter("veil_relay_exit_streams_total", "Exit streams opened.", &e.stats.begins, nil)
	counter("veil_relay_exit_streams_refused_total", "BEGINs refused: exit policy, resolution or connection.", &e.stats.refused, nil)
	counter("veil_relay_pings_answered_total", "PINGs answered: clients checking that their path is alive.", &e.stats.pings, nil)
	for r := range e.stats.destroyed {
		counter("veil_relay_circuits_destroyed_total", "Circuits destroyed, by reason.",
			&e.stats.destroyed[r], prometheus.Labels{"reason": onion.DestroyReason(r).String()})
	}
	for why := range e.stats.refusedCreates {
		counter("veil_relay_creates_refused_total",
			"CREATEs refused with RESOURCELIMIT, by the limit reached: the relay's table, a peer's share or a peer's rate.",
			&e.stats.refusedCreates[why], prometheus.Labels{"limit": refusalNames[why]})
	}
	for r := range e.stats.handshakes {
		counter("veil_relay_handshakes_total", "CREATE handshakes, by result.",
			&e.stats.handshakes[r], prometheus.Labels{"result": handshakeNames[r]})
	}
	for k := range e.stats.streams {
		counter("veil_relay_streams_opened_total", "Streams opened at this relay, by kind.",
			&e.stats.streams[k], prometheus.Labels{"kind": streamKindNames[k]})
	}
	if s := e.store; s != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "veil_relay_storage_used_bytes", Help: "Bytes of shard files stored."},
				func() float64 { b, _ := s.Usage(); return float64(b) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "veil_relay_storage_quota_bytes", Help: "The storage quota: storage_quota."},
				func() float64 { return float64(e.r.cfg.StorageQuota) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "veil_relay_shards_stored", Help: "Shards stored."},
				func() float64 { _, n := s.Usage(); return float64(n) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "veil_relay_shards_expired_total",
				Help: "Shards removed because their time ran out; a store never evicts a live shard to make room."},
				func() float64 { return float64(s.Expired()) }),
		)
	}
}

// engineCollector reads, at each scrape, what the relay holds now: links,
// circuits, streams and queued cells, and the cells and bytes carried,
// closed links included. One pass over the links serves every figure.
type engineCollector struct{ e *engine }

var (
	linksDesc    = prometheus.NewDesc("veil_relay_links", "Open links.", nil, nil)
	circuitsDesc = prometheus.NewDesc("veil_relay_circuits", "Open circuits.", nil, nil)
	streamsDesc  = prometheus.NewDesc("veil_relay_streams", "Open streams at this relay: exit, directory and storage.", nil, nil)
	queuedDesc   = prometheus.NewDesc("veil_relay_queued_cells", "Cells waiting in link send queues.", nil, nil)
	cellsInDesc  = prometheus.NewDesc("veil_relay_cells_received_total", "Cells read on links.", nil, nil)
	cellsOutDesc = prometheus.NewDesc("veil_relay_cells_sent_total", "Cells written on links.", nil, nil)
	bytesInDesc  = prometheus.NewDesc("veil_relay_bytes_received_total", "Bytes relayed in: whole cells read on links.", nil, nil)
	bytesOutDesc = prometheus.NewDesc("veil_relay_bytes_sent_total", "Bytes relayed out: whole cells written on links.", nil, nil)
	engineDescs  = []*prometheus.Desc{linksDesc, circuitsDesc, streamsDesc, queuedDesc, cellsInDesc, cellsOutDesc, bytesInDesc, bytesOutDesc}
)

var _ prometheus.Collector = engineCollector{}

func (engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range engineDescs {
		ch <- d
	}
}

func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.e.mem.traffic()
	circuits, streams := 0, 0
	seen := map[*relayCircuit]bool{}
	for _, circ := range c.e.circs.all() {
		if seen[circ] {
			continue
		}
		seen[circ] = true
		circuits++
		circ.mu.Lock()
		if circ.exit != nil {
			streams += circ.exit.Len()
		}
		circ.mu.Unlock()
	}
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(linksDesc, float64(t.links))
	gauge(circuitsDesc, float64(circuits))
	gauge(streamsDesc, float64(streams))
	gauge(queuedDesc, float64(t.queued))
	counter(cellsInDesc, t.cellsIn)
	counter(cellsOutDesc, t.cellsOut)
	counter(bytesInDesc, t.cellsIn*onion.CellSize)
	counter(bytesOutDesc, t.cellsOut*onion.CellSize)
}

// traffic is what the relay's links carried, closed ones included, and
// hold now.
type traffic struct {
	links             int
	queued            uint64
	cellsIn, cellsOut uint64
}

// traffic sums the open links' counters and the closed links' totals
// under one lock, so a link that closes between two scrapes is counted
// once and the totals never go back.
func (m *memory) traffic() traffic {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := traffic{links: len(m.links), cellsIn: m.closedCellsIn, cellsOut: m.closedCellsOut}
	for l := range m.links {
		st := l.Stats()
		t.cellsIn += st.CellsIn
		t.cellsOut += st.CellsOut
		t.queued += uint64(st.Queued)
	}
	return t
}

// serveMetrics serves /metrics on ln until ctx ends: the relay's own
// metrics on a registry of its own, beside the process's.
func (e *engine) serveMetrics(ctx context.Context, ln net.Listener, started time.Time) {
	reg := daemonmetrics.NewRegistry("relay", started)
	e.registerMetrics(reg)
	daemonmetrics.Serve(ctx, ln, reg, e.log)
}
