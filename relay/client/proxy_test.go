package client

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"veil/conf"
	"veil/onion/keys"
	"veil/relay/internal/procmetrics"
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
	url := "http://" + p.MetricsAddr().String() + "/metrics"
	resp, err := http.Get(url)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("GET /metrics: %s, %v", resp.Status, err)
	}
	got, err := procmetrics.Parse(string(body))
	if err != nil {
		t.Errorf("%v in:\n%s", err, body)
	}
	for _, name := range []string{"go_goroutines", "veil_proxy_circuits", "veil_proxy_spare_circuits",
		"veil_proxy_streams", "veil_proxy_circuits_built_total"} {
		if _, ok := got[name]; !ok {
			t.Errorf("no %s in:\n%s", name, body)
		}
	}
	if got["go_goroutines"] < 1 {
		t.Errorf("go_goroutines = %d", got["go_goroutines"])
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
