package client

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"veil/conf"
	"veil/directory/daemonmetrics/metricstest"
	"veil/onion/keys"
)

// TestProxyMetrics: with metrics_addr set, the proxy serves /metrics in
// the text format, with its own counts and the process gauges, and stops
// serving when it stops.
func TestProxyMetrics(t *testing.T) {
	cfg := proxyConfig(t)
	cfg.MetricsAddr = "127.0.0.1:0"
	p, err := NewProxy(&cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer cancel()
	url := "http://" + p.MetricsAddr().String() + "/metrics"
	got := metricstest.Get(t, p.MetricsAddr().String())
	for _, name := range []string{"go_goroutines", "veil_proxy_circuits", "veil_proxy_spare_circuits",
		"veil_proxy_streams", "veil_proxy_circuits_built_total", "veil_proxy_circuit_build_seconds_count",
		"veil_proxy_circuit_extend_seconds_count", "veil_proxy_circuit_build_failures_total", "veil_uptime_seconds"} {
		if _, ok := got[name]; !ok {
			t.Errorf("no %s in %v", name, got)
		}
	}
	if got["go_goroutines"] < 1 {
		t.Errorf("go_goroutines = %v", got["go_goroutines"])
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after its context ended")
	}
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Error("/metrics still served after Run returned")
	}
}

// TestProxyMetricsOff: metrics_addr "" binds nothing.
func TestProxyMetricsOff(t *testing.T) {
	cfg := proxyConfig(t)
	p, err := NewProxy(&cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.ln.Close()
	if a := p.MetricsAddr(); a != nil {
		t.Errorf("MetricsAddr() = %v with metrics off", a)
	}
}

// TestProxyMetricsNotLoopback: a metrics address off loopback is refused
// unless metrics_public says the user means it.
func TestProxyMetricsNotLoopback(t *testing.T) {
	cfg := proxyConfig(t)
	cfg.MetricsAddr = "0.0.0.0:0"
	if p, err := NewProxy(&cfg, nil); err == nil {
		p.ln.Close()
		p.metricsLn.Close()
		t.Fatal("NewProxy served metrics on 0.0.0.0 without metrics_public")
	}
	cfg.MetricsPublic = true
	p, err := NewProxy(&cfg, nil)
	if err != nil {
		t.Fatalf("NewProxy with metrics_public: %v", err)
	}
	p.ln.Close()
	p.metricsLn.Close()
}

// proxyConfig is a valid client config on free loopback ports whose one
// seed nobody answers for: the proxy serves /metrics before it has a
// consensus.
func proxyConfig(t *testing.T) conf.Client {
	t.Helper()
	dir := t.TempDir()
	seedKeys, err := keys.Open(filepath.Join(dir, "seed"), keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := conf.DefaultClient()
	cfg.DataDir = filepath.Join(dir, "client")
	cfg.SOCKSAddr = "127.0.0.1:0"
	cfg.Seeds = []conf.SeedPin{{Name: "s1", DirURL: "http://127.0.0.1:1", Identity: seedKeys.Identity().ID().String()}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}
