package nodestatus

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestScrapeReadsTheRelayNames: Scrape reads uptime, bytes and circuits
// from a page in client_golang's format (floats, exponents, labelled
// samples among them), and falls back to cells and the process start time
// on a relay that reports only those.
func TestScrapeReadsTheRelayNames(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	pages := map[string]Running{
		`# HELP veil_uptime_seconds Seconds since the daemon started.
# TYPE veil_uptime_seconds gauge
veil_uptime_seconds 3723.4
veil_relay_bytes_received_total 1.2e+07
veil_relay_bytes_sent_total 3.4e+06
veil_relay_circuits 12
veil_relay_streams 3
veil_relay_circuits_destroyed_total{reason="TIMEOUT"} 4
`: {Uptime: 3723 * time.Second, BytesIn: 12_000_000, BytesOut: 3_400_000, Circuits: 12, Streams: 3},
		`process_start_time_seconds 1.79999e+09
veil_relay_cells_received_total 10
veil_relay_cells_sent_total 2
`: {Uptime: 10_000 * time.Second, BytesIn: 10 * cellSize, BytesOut: 2 * cellSize},
	}
	for page, want := range pages {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, page) }))
		addr := strings.TrimPrefix(srv.URL, "http://")
		got, err := Scrape(context.Background(), srv.Client(), addr, now)
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		want.MetricsAddr = addr
		if *got != want {
			t.Errorf("Scrape = %+v, want %+v", *got, want)
		}
	}
}
