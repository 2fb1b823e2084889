package client

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are what a client measures of its own circuits, for the
// proxy's /metrics: how long builds and each hop's extension take, and
// how many builds failed. Nothing names a circuit, a relay or a
// destination.
type metrics struct {
	buildSeconds  prometheus.Histogram
	extendSeconds prometheus.Histogram
	buildFailures prometheus.Counter
}

// Latency buckets: a hop is a round trip through the hops before it and
// a handshake, milliseconds on one machine and up to a second or two on
// the internet; a build is up to onion.MaxHops of them, within
// buildTimeout.
var (
	extendBuckets = prometheus.ExponentialBuckets(0.001, 2.5, 12) // 1 ms to 24 s
	buildBuckets  = prometheus.ExponentialBuckets(0.002, 2.5, 12) // 2 ms to 48 s
)

func newMetrics() metrics {
	return metrics{
		buildSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "veil_proxy_circuit_build_seconds",
			Help:    "Time to build a circuit that was built: the guard's link, if new, and every hop.",
			Buckets: buildBuckets,
		}),
		extendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "veil_proxy_circuit_extend_seconds",
			Help:    "Time to add one hop to a circuit, the first (CREATE) included.",
			Buckets: extendBuckets,
		}),
		buildFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_proxy_circuit_build_failures_total",
			Help: "Circuit builds that failed, at any hop.",
		}),
	}
}

var (
	circuitsDesc = prometheus.NewDesc("veil_proxy_circuits", "Open circuits, built or being built.", nil, nil)
	sparesDesc   = prometheus.NewDesc("veil_proxy_spare_circuits", "Circuits built ahead, not yet used.", nil, nil)
	streamsDesc  = prometheus.NewDesc("veil_proxy_streams", "Open streams.", nil, nil)
	builtDesc    = prometheus.NewDesc("veil_proxy_circuits_built_total", "Circuits built since start.", nil, nil)
)

var _ prometheus.Collector = (*Client)(nil)

// Describe is half of prometheus.Collector: a Client is registered as
// one.
func (cl *Client) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{circuitsDesc, sparesDesc, streamsDesc, builtDesc} {
		ch <- d
	}
	cl.metrics.buildSeconds.Describe(ch)
	cl.metrics.extendSeconds.Describe(ch)
	cl.metrics.buildFailures.Describe(ch)
}

// Collect is the other half: the figures of Stats and Spares, and the
// latency histograms.
func (cl *Client) Collect(ch chan<- prometheus.Metric) {
	circuits, streams, built := cl.Stats()
	ch <- prometheus.MustNewConstMetric(circuitsDesc, prometheus.GaugeValue, float64(circuits))
	ch <- prometheus.MustNewConstMetric(sparesDesc, prometheus.GaugeValue, float64(cl.Spares()))
	ch <- prometheus.MustNewConstMetric(streamsDesc, prometheus.GaugeValue, float64(streams))
	ch <- prometheus.MustNewConstMetric(builtDesc, prometheus.CounterValue, float64(built))
	cl.metrics.buildSeconds.Collect(ch)
	cl.metrics.extendSeconds.Collect(ch)
	cl.metrics.buildFailures.Collect(ch)
}

// since is the seconds from start to now, for a histogram.
func since(start time.Time) float64 { return time.Since(start).Seconds() }
