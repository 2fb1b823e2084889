package nodestatus

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Running is a node's own account of itself, from its /metrics.
type Running struct {
	MetricsAddr string        `json:"metrics_addr"`
	Uptime      time.Duration `json:"uptime_ns"`
	// BytesIn and BytesOut are what the node's links read and wrote
	// since it started.
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
	Circuits uint64 `json:"circuits"` // open now
	Streams  uint64 `json:"streams"`  // open now
}

// The /metrics samples Scrape reads, by the names relay/metrics.go and
// directory/daemonmetrics give them; each has an older name it falls
// back to, so a status from one version reads a relay of the one before.
var (
	uptimeNames   = []string{"veil_uptime_seconds"}
	startNames    = []string{"process_start_time_seconds"}
	bytesInNames  = []string{"veil_relay_bytes_received_total"}
	bytesOutNames = []string{"veil_relay_bytes_sent_total"}
	cellsInNames  = []string{"veil_relay_cells_received_total"}
	cellsOutNames = []string{"veil_relay_cells_sent_total"}
	circuitNames  = []string{"veil_relay_circuits"}
	streamNames   = []string{"veil_relay_streams"}
)

// cellSize is onion.CellSize, for a relay that reports cells only.
const cellSize = 4096

// maxMetricsLen bounds the /metrics page read: a relay's is a few KiB.
const maxMetricsLen = 4 << 20

// Scrape reads the /metrics page served on addr (host:port).
func Scrape(ctx context.Context, client *http.Client, addr string, now time.Time) (*Running, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("nodestatus: metrics at %s: %w", addr, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("nodestatus: metrics at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("nodestatus: metrics at %s: %s", addr, resp.Status)
	}
	samples, err := parseSamples(io.LimitReader(resp.Body, maxMetricsLen))
	if err != nil {
		return nil, fmt.Errorf("nodestatus: metrics at %s: %w", addr, err)
	}
	get := func(names []string) (float64, bool) {
		for _, n := range names {
			if v, ok := samples[n]; ok {
				return v, true
			}
		}
		return 0, false
	}
	r := &Running{MetricsAddr: addr}
	if up, ok := get(uptimeNames); ok {
		r.Uptime = seconds(up)
	} else if start, ok := get(startNames); ok {
		r.Uptime = now.Sub(time.Unix(0, int64(start*1e9))).Round(time.Second)
	}
	if in, ok := get(bytesInNames); ok {
		r.BytesIn = count(in)
	} else if in, ok := get(cellsInNames); ok {
		r.BytesIn = count(in) * cellSize
	}
	if out, ok := get(bytesOutNames); ok {
		r.BytesOut = count(out)
	} else if out, ok := get(cellsOutNames); ok {
		r.BytesOut = count(out) * cellSize
	}
	c, _ := get(circuitNames)
	s, _ := get(streamNames)
	r.Circuits, r.Streams = count(c), count(s)
	return r, nil
}

// parseSamples reads the samples without labels of a Prometheus text
// exposition ("name value [timestamp]"); comments and labelled samples
// are skipped.
func parseSamples(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || strings.Contains(line, "{") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("sample %q has no value", line)
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return nil, fmt.Errorf("sample %q: %w", line, err)
		}
		out[f[0]] = v
	}
	return out, sc.Err()
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Second)
}

// count turns a sample into a count, 0 for one that is not a finite
// non-negative number.
func count(v float64) uint64 {
	if math.IsNaN(v) || v < 0 || v > math.MaxInt64 {
		return 0
	}
	return uint64(v)
}
