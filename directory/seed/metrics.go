package seed

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"veil/directory"
)

// metrics are the seed's own figures for /metrics, set by each signing
// (the loop's goroutine) and read by scrapes: the library's gauges and
// histograms are safe for that. Labels come from fixed sets
// (RefusalKind), never a node ID, a gossip name or a network.
type metrics struct {
	members        prometheus.Gauge
	listed         prometheus.Gauge
	valid          prometheus.Gauge
	guards         prometheus.Gauge
	consensusBytes prometheus.Gauge
	lastSigned     prometheus.Gauge
	signSeconds    prometheus.Histogram
	signed         prometheus.Counter
	signFailures   prometheus.Counter
	refused        *prometheus.GaugeVec
}

// signBuckets: a signing reads the membership, decides entries and signs
// once; milliseconds for hundreds of relays, a second or so for many
// thousands (directory/bench_test.go).
var signBuckets = prometheus.ExponentialBuckets(0.0005, 2.5, 12) // 0.5 ms to 12 s

func newMetrics() *metrics {
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	m := &metrics{
		members:        gauge("veil_seed_members", "Relays alive in gossip with a valid descriptor at the last signing."),
		listed:         gauge("veil_seed_consensus_relays", "Relays listed in the last consensus signed, Valid or not."),
		valid:          gauge("veil_seed_consensus_valid_relays", "Relays with the Valid flag in the last consensus signed."),
		guards:         gauge("veil_seed_consensus_guards", "Relays with the Guard flag in the last consensus signed."),
		consensusBytes: gauge("veil_seed_consensus_bytes", "Size of the last signed consensus as served."),
		lastSigned:     gauge("veil_seed_last_signed_timestamp_seconds", "Unix time of the last consensus signed."),
		signSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "veil_seed_signing_seconds", Help: "Time to decide and sign one consensus.", Buckets: signBuckets,
		}),
		signed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_seed_consensuses_signed_total", Help: "Consensuses signed since start.",
		}),
		signFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_seed_signing_failures_total", Help: "Signings that failed; the previous consensus is still served.",
		}),
		refused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "veil_seed_refused_entries",
			Help: "Relays refused Valid or left out at the last signing, by reason.",
		}, []string{"reason"}),
	}
	// Every reason is shown, at 0 until it happens, so a dashboard
	// needs no special case for an absent series.
	for k := range numRefusalKinds {
		m.refused.WithLabelValues(k.String())
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) {
	reg.MustRegister(m.members, m.listed, m.valid, m.guards, m.consensusBytes, m.lastSigned,
		m.signSeconds, m.signed, m.signFailures, m.refused)
}

// signedOne records a signing.
func (m *metrics) signedOne(took time.Duration, at time.Time, members int, entries []directory.Entry, refused []Refusal, size int) {
	var valid, guards int
	for _, e := range entries {
		if e.Flags&directory.FlagValid != 0 {
			valid++
		}
		if e.Flags&directory.FlagGuard != 0 {
			guards++
		}
	}
	var byKind [numRefusalKinds]int
	for _, r := range refused {
		if r.Kind >= 0 && r.Kind < numRefusalKinds {
			byKind[r.Kind]++
		}
	}
	m.members.Set(float64(members))
	m.listed.Set(float64(len(entries)))
	m.valid.Set(float64(valid))
	m.guards.Set(float64(guards))
	m.consensusBytes.Set(float64(size))
	m.lastSigned.Set(float64(at.Unix()))
	m.signSeconds.Observe(took.Seconds())
	m.signed.Inc()
	for k, n := range byKind {
		m.refused.WithLabelValues(RefusalKind(k).String()).Set(float64(n))
	}
}
