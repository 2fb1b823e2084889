package daemonmetrics

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"veil/directory/daemonmetrics/metricstest"
)

// TestServe: /metrics serves the registry, lint-clean, with the gauges a
// soak reads for leaks under Prometheus's usual names, and Serve returns,
// its listener closed, when ctx ends.
func TestServe(t *testing.T) {
	ln, err := Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(ctx, ln, NewRegistry("relay", time.Now().Add(-time.Minute)), nil)
	}()
	got := metricstest.Get(t, ln.Addr().String())
	if got["go_goroutines"] < 1 || got["veil_uptime_seconds"] < 60 {
		t.Errorf("go_goroutines = %v, veil_uptime_seconds = %v", got["go_goroutines"], got["veil_uptime_seconds"])
	}
	if runtime.GOOS == "linux" && (got["process_open_fds"] < 3 || got["process_resident_memory_bytes"] < 1<<20) {
		t.Errorf("implausible process gauges: %v fds, %v bytes", got["process_open_fds"], got["process_resident_memory_bytes"])
	}
	found := false
	for k, v := range got {
		if strings.HasPrefix(k, "veil_build_info{") && strings.Contains(k, `role="relay"`) && v == 1 {
			found = true
		}
	}
	if !found {
		t.Error("no veil_build_info{role=\"relay\"} 1")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return after its context ended")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the listener still accepts after Serve returned")
	}
}

// TestListenOffLoopback: an address off loopback is refused unless
// public, and served with a warning when it is.
func TestListenOffLoopback(t *testing.T) {
	if _, err := Listen("0.0.0.0:0", false); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("Listen(0.0.0.0:0, not public) = %v, want ErrNotLoopback", err)
	}
	ln, err := Listen("0.0.0.0:0", true)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	Serve(ctx, ln, NewRegistry("seed", time.Now()), slog.New(slog.NewTextHandler(&logs, nil)))
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "metrics_public") {
		t.Errorf("no warning for metrics off loopback; logs:\n%s", logs.String())
	}
	for _, a := range []string{"127.0.0.1:9100", "[::1]:9100", "[::ffff:127.0.0.1]:9100"} {
		if !IsLoopback(net.TCPAddrFromAddrPort(mustAddrPort(t, a))) {
			t.Errorf("IsLoopback(%s) = false", a)
		}
	}
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}
