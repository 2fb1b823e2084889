package relay

import (
	"bytes"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestProcessMetrics: /metrics carries the gauges a soak reads for leaks,
// under Prometheus's usual names, with sane values.
func TestProcessMetrics(t *testing.T) {
	var b bytes.Buffer
	writeProcessMetrics(&b)
	got := map[string]int64{}
	for line := range strings.Lines(b.String()) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			t.Fatalf("bad line %q", line)
		}
		got[name] = n
	}
	if got["go_goroutines"] < 1 {
		t.Fatalf("go_goroutines = %d in:\n%s", got["go_goroutines"], b.String())
	}
	if runtime.GOOS == "linux" && (got["process_open_fds"] < 3 || got["process_resident_memory_bytes"] < 1<<20) {
		t.Fatalf("implausible process gauges:\n%s", b.String())
	}
}
