package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"veil/directory/daemonmetrics/metricstest"
)

// metricsHang detects a hang; it is not the property under test.
const metricsHang = 2 * time.Minute

// TestMetricsLintClean (issue 16 item 6): the /metrics of every running
// seed, relay and proxy of a testnet, after a page went through it, parses
// with Prometheus's own parser, passes its lint, carries no label value
// that looks like an address or an ID (metricstest.Check), and shows the
// traffic: bytes relayed, handshakes and build times at the relays, a
// signed consensus at the seeds, built circuits at the proxy.
func TestMetricsLintClean(t *testing.T) {
	_, m := startTestnet(t, 3)
	web := webAddr(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), metricsHang)
	defer cancel()
	for attempts := 1; ; attempts++ {
		err := fetch(ctx, m, web, 100_000, "")
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no page through the testnet after %d attempts: %v", attempts, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	var relayed, creates float64
	for _, r := range m.Relays {
		got := metricstest.Get(t, r.Metrics)
		relayed += got["veil_relay_bytes_sent_total"]
		creates += got[`veil_relay_handshakes_total{result="ok"}`]
		requireBasics(t, r.Name, "relay", got)
	}
	if relayed < 100_000 || creates < 3 {
		t.Errorf("relays report %v bytes sent and %v handshakes after a 100 kB page over three hops", relayed, creates)
	}
	for _, s := range m.Seeds {
		got := metricstest.Get(t, s.Metrics)
		requireBasics(t, s.Name, "seed", got)
		if got["veil_seed_consensuses_signed_total"] < 1 || got["veil_seed_consensus_bytes"] < 1 || got["veil_seed_members"] < 1 {
			t.Errorf("%s: signed %v, %v bytes, %v members", s.Name, got["veil_seed_consensuses_signed_total"],
				got["veil_seed_consensus_bytes"], got["veil_seed_members"])
		}
	}
	got := metricstest.Get(t, m.Proxy.Metrics)
	requireBasics(t, "proxy", "proxy", got)
	if got["veil_proxy_circuit_build_seconds_count"] < 1 || got["veil_proxy_circuits_built_total"] < 1 {
		t.Errorf("proxy: %v builds timed, %v built", got["veil_proxy_circuit_build_seconds_count"], got["veil_proxy_circuits_built_total"])
	}
}

// requireBasics checks what every daemon serves: build info for its role,
// uptime, and the process and Go runtime collectors.
func requireBasics(t *testing.T, name, role string, got map[string]float64) {
	t.Helper()
	info := false
	for k, v := range got {
		info = info || strings.HasPrefix(k, "veil_build_info{") && strings.Contains(k, `role="`+role+`"`) && v == 1
	}
	if !info || got["veil_uptime_seconds"] <= 0 || got["go_goroutines"] < 1 || got["process_open_fds"] < 1 ||
		got["process_resident_memory_bytes"] < 1 || got["go_memstats_heap_alloc_bytes"] < 1 {
		t.Errorf("%s: build_info %v, uptime %v, goroutines %v, fds %v, rss %v, heap %v", name, info, got["veil_uptime_seconds"],
			got["go_goroutines"], got["process_open_fds"], got["process_resident_memory_bytes"], got["go_memstats_heap_alloc_bytes"])
	}
}
