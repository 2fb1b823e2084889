package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"veil/onion"
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
	metric := func(name, kind, help string, v uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", name, help, name, kind, name, v)
	}
	metric("veil_relay_links", "gauge", "Open links.", uint64(links))
	metric("veil_relay_circuits", "gauge", "Open circuits.", uint64(circuits))
	metric("veil_relay_cells_received_total", "counter", "Cells read on open links.", cellsIn)
	metric("veil_relay_cells_sent_total", "counter", "Cells written on open links.", cellsOut)
	metric("veil_relay_queued_cells", "gauge", "Cells waiting in link send queues.", queued)
	metric("veil_relay_circuits_created_total", "counter", "Circuits created at this relay.", e.stats.created.Load())
	metric("veil_relay_extends_total", "counter", "EXTENDs completed.", e.stats.extends.Load())
	metric("veil_relay_exit_streams_total", "counter", "Exit streams opened.", e.stats.begins.Load())
	metric("veil_relay_exit_streams_refused_total", "counter", "BEGINs refused.", e.stats.refused.Load())
	fmt.Fprintf(w, "# HELP veil_relay_circuits_destroyed_total Circuits destroyed, by reason.\n# TYPE veil_relay_circuits_destroyed_total counter\n")
	for r := range e.stats.destroyed {
		fmt.Fprintf(w, "veil_relay_circuits_destroyed_total{reason=%q} %d\n", onion.DestroyReason(r).String(), e.stats.destroyed[r].Load())
	}
	writeProcessMetrics(w)
}

// writeProcessMetrics writes the process gauges under the names
// Prometheus's Go client uses, so that a soak or a dashboard sees leaks:
// goroutines, open file descriptors and resident memory. The last two come
// from /proc and are left out where it does not exist.
func writeProcessMetrics(w io.Writer) {
	gauge := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	gauge("go_goroutines", "Number of goroutines that currently exist.", int64(runtime.NumGoroutine()))
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		gauge("process_open_fds", "Number of open file descriptors.", int64(len(fds)))
	}
	if rss, ok := residentBytes(); ok {
		gauge("process_resident_memory_bytes", "Resident memory size in bytes.", rss)
	}
}

// residentBytes reads VmRSS from /proc/self/status.
func residentBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		return kb << 10, err == nil
	}
	return 0, false
}

// serveMetrics serves /metrics on addr until ctx ends.
func (e *engine) serveMetrics(ctx context.Context, ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		e.writeMetrics(w)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		e.log.Warn("metrics server stopped", "err", err)
	}
}
