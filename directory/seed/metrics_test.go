package seed

import (
	"testing"
	"time"

	"veil/directory"
	"veil/directory/daemonmetrics"
	"veil/directory/daemonmetrics/metricstest"
)

// TestMetricsAfterSigning: a signing's figures reach /metrics lint-clean,
// refusals counted by their kind and never by anything that names the
// relay or its network, though Reason does.
func TestMetricsAfterSigning(t *testing.T) {
	m := newMetrics()
	reg := daemonmetrics.NewRegistry("seed", time.Now())
	m.register(reg)
	entries := []directory.Entry{
		{Flags: directory.FlagRunning | directory.FlagValid | directory.FlagGuard},
		{Flags: directory.FlagRunning | directory.FlagValid},
		{Flags: directory.FlagRunning},
	}
	refused := []Refusal{{Reason: "more than 8 relays in 10.1.0.0/16", Kind: RefusedSlash16}}
	m.signedOne(3*time.Millisecond, time.Unix(1_800_000_000, 0), 4, entries, refused, 12345)
	got := metricstest.Gather(t, reg)
	for name, want := range map[string]float64{
		"veil_seed_members": 4, "veil_seed_consensus_relays": 3, "veil_seed_consensus_valid_relays": 2,
		"veil_seed_consensus_guards": 1, "veil_seed_consensus_bytes": 12345,
		"veil_seed_last_signed_timestamp_seconds": 1_800_000_000, "veil_seed_signing_seconds_count": 1,
		"veil_seed_consensuses_signed_total": 1, "veil_seed_signing_failures_total": 0,
		`veil_seed_refused_entries{reason="slash16"}`: 1, `veil_seed_refused_entries{reason="allowlist"}`: 0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
}
