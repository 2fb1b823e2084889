// Package procmetrics serves /metrics for veil's daemons: the process
// gauges every one of them exposes (goroutines, open descriptors, resident
// memory) in Prometheus's text format, and the small HTTP server that
// serves a daemon's metrics on its metrics_addr.
package procmetrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Metric writes one metric without labels in the Prometheus text
// exposition format: its HELP and TYPE lines and its value. kind is
// "gauge" or "counter".
func Metric(w io.Writer, name, kind, help string, v uint64) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", name, help, name, kind, name, v)
}

// Write writes the process gauges under the names Prometheus's Go client
// uses, so that a soak or a dashboard sees leaks: goroutines, open file
// descriptors and resident memory. The last two come from /proc and are
// left out where it does not exist.
func Write(w io.Writer) {
	Metric(w, "go_goroutines", "gauge", "Number of goroutines that currently exist.", uint64(runtime.NumGoroutine()))
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		Metric(w, "process_open_fds", "gauge", "Number of open file descriptors.", uint64(len(fds)))
	}
	if rss, ok := residentBytes(); ok {
		Metric(w, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss)
	}
}

// residentBytes reads VmRSS from /proc/self/status.
func residentBytes() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		return kb << 10, err == nil
	}
	return 0, false
}

// Serve serves GET /metrics on ln, written by write, until ctx ends; it
// closes ln. It returns when the server has stopped. A nil log is silent.
func Serve(ctx context.Context, ln net.Listener, write func(io.Writer), log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		write(w)
	})
	// The timeouts keep a slow or idle scraper from holding a goroutine
	// and a descriptor for long.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second,
		IdleTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
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
