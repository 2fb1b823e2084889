package relay

import (
	"bytes"
	"testing"

	"veil/relay/internal/procmetrics"
)

// TestMetricsFormat: a relay's /metrics is well-formed text, with its own
// gauges and counters beside the process gauges a soak reads for leaks.
func TestMetricsFormat(t *testing.T) {
	var b bytes.Buffer
	(&engine{}).writeMetrics(&b)
	got, err := procmetrics.Parse(b.String())
	if err != nil {
		t.Fatalf("%v in:\n%s", err, b.String())
	}
	for _, name := range []string{"veil_relay_links", "veil_relay_circuits", "veil_relay_circuits_created_total",
		`veil_relay_circuits_destroyed_total{reason="TAMPERED"}`, `veil_relay_creates_refused_total{limit="peer_share"}`, "go_goroutines"} {
		if _, ok := got[name]; !ok {
			t.Errorf("no %s in:\n%s", name, b.String())
		}
	}
	if got["go_goroutines"] < 1 {
		t.Errorf("go_goroutines = %d", got["go_goroutines"])
	}
}
