package daemonmetrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"veil/onion"
)

// Serving limits. A scrape is a few kilobytes; anything slower or more
// numerous than this is not Prometheus.
const (
	// readHeaderTimeout and writeTimeout keep a slow scraper from holding
	// a goroutine and a descriptor for long.
	readHeaderTimeout = 5 * time.Second
	writeTimeout      = 10 * time.Second
	idleTimeout       = 30 * time.Second
	// maxScrapesInFlight bounds concurrent scrapes, so a flood of them
	// costs the daemon a few goroutines, not its memory.
	maxScrapesInFlight = 4
)

// ErrNotLoopback is a metrics address off loopback without metrics_public.
var ErrNotLoopback = errors.New("daemonmetrics: metrics_addr is not a loopback address; set metrics_public = true to serve metrics there")

// NewRegistry returns a registry holding what every daemon exposes: the
// Go runtime and process collectors (go_goroutines, process_open_fds,
// process_resident_memory_bytes and the rest, under the names dashboards
// and cmd/veilsoak know), veil_build_info, and veil_uptime_seconds since
// started. role ("relay", "seed" or "proxy") is build_info's label.
func NewRegistry(role string, started time.Time) *prometheus.Registry {
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "veil_build_info",
		Help: "Always 1; the labels say which build of veil runs, in which role.",
		ConstLabels: prometheus.Labels{
			"role": role, "version": version(), "goversion": runtime.Version(),
			"protocol": strconv.Itoa(onion.ProtocolVersion),
		},
	})
	build.Set(1)
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "veil_uptime_seconds",
			Help: "Seconds since the daemon started.",
		}, func() float64 { return time.Since(started).Seconds() }),
	)
	return reg
}

// version is the main module's version as the go command recorded it:
// "(devel)" for a build from a checkout.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// Listen binds addr for /metrics. An address off loopback is refused
// unless public is true: counters of traffic and circuits over time tell
// whoever reads them when the node is used, and a client's metrics show
// its owner's habits. The check is on the address bound, so a name that
// resolves off loopback is caught as well as 0.0.0.0.
func Listen(addr string, public bool) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("daemonmetrics: metrics_addr: %w", err)
	}
	if !public && !IsLoopback(ln.Addr()) {
		ln.Close()
		return nil, fmt.Errorf("%w (%s)", ErrNotLoopback, addr)
	}
	return ln, nil
}

// IsLoopback says a is a TCP address on loopback.
func IsLoopback(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// Serve serves GET /metrics from reg on ln until ctx ends; it closes ln
// and returns when the server has stopped. It warns once at start when ln
// is off loopback (Listen let it through because metrics_public is set).
// A nil log is silent.
func Serve(ctx context.Context, ln net.Listener, reg *prometheus.Registry, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !IsLoopback(ln.Addr()) {
		log.Warn("metrics are served off loopback (metrics_public = true): whoever reaches them sees when and how much this node is used",
			"metrics", ln.Addr().String())
	}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            errLog,
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxScrapesInFlight,
		Timeout:             writeTimeout,
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout, WriteTimeout: writeTimeout,
		IdleTimeout: idleTimeout, ErrorLog: errLog}
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			srv.Close()
		case <-stopped:
		}
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("metrics server stopped", "err", err)
	}
}
