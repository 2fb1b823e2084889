package relay

import (
	"testing"
	"time"

	"veil/conf"
	"veil/directory/daemonmetrics"
	"veil/directory/daemonmetrics/metricstest"
	"veil/onion"
	shardstore "veil/shard/store"
)

// TestMetricsFormat: a relay's registry, storage included, passes the
// library's parser and lint with no label that names anyone, and holds
// the relay's own metrics beside the process's.
func TestMetricsFormat(t *testing.T) {
	st, err := shardstore.Open(t.TempDir(), shardstore.Options{Quota: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cfg := conf.DefaultRelay()
	cfg.StorageQuota = 1 * conf.MiB
	e := &engine{r: &Relay{cfg: &cfg}, store: st, circs: circuitTable{byHop: map[hop]*relayCircuit{}}}
	e.stats.init()
	e.stats.destroyedFor(onion.DestroyTampered)
	e.stats.createSeconds.Observe(0.001)
	reg := daemonmetrics.NewRegistry("relay", time.Now())
	e.registerMetrics(reg)
	got := metricstest.Gather(t, reg)
	for name, want := range map[string]float64{
		"veil_relay_links": 0, "veil_relay_circuits": 0, "veil_relay_circuits_created_total": 0,
		`veil_relay_circuits_destroyed_total{reason="TAMPERED"}`: 1,
		`veil_relay_creates_refused_total{limit="peer_share"}`:   0,
		`veil_relay_handshakes_total{result="failed"}`:           0,
		`veil_relay_streams_opened_total{kind="exit"}`:           0,
		"veil_relay_bytes_received_total":                        0,
		"veil_relay_bytes_sent_total":                            0,
		"veil_relay_create_seconds_count":                        1,
		"veil_relay_extend_seconds_count":                        0,
		"veil_relay_storage_quota_bytes":                         1 << 20,
		"veil_relay_storage_used_bytes":                          0,
		"veil_relay_shards_stored":                               0,
		"veil_relay_shards_expired_total":                        0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if got["go_goroutines"] < 1 || got["process_open_fds"] < 1 {
		t.Errorf("go_goroutines = %v, process_open_fds = %v", got["go_goroutines"], got["process_open_fds"])
	}
}
