package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"veil/relay/testnet"
)

// waitFileLog waits until the log file at path holds want.
func waitFileLog(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(hangTimeout)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s logged no %q:\n%s", path, want, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRelayRateCapThroughProcesses (issue 16 item 3): on `veil testnet`,
// the client's guard is given relay_bandwidth_rate = 1MiB by editing its
// config and sending it SIGHUP; it logs the new cap, and from then on 4
// downloads at once, every byte of which passes the guard, receive no
// more than the cap allows (a burst plus the rate times the time), while
// still moving.
func TestRelayRateCapThroughProcesses(t *testing.T) {
	_, m := startTestnet(t, 3)
	web := webAddr(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	if err := fetch(ctx, m, web, 1<<20, "warm"); err != nil { // picks the guard
		t.Fatal(err)
	}
	pid := guardPID(t, m)
	var guard testnet.Proc
	for _, r := range m.Relays {
		if r.PID == pid {
			guard = r
		}
	}
	const rate = 1 << 20
	setConfigLine(t, guard.Config, "relay_bandwidth_rate", quote("1MiB"))
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFileLog(t, guard.Log, "bandwidth cap set")

	var got atomic.Int64
	dctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 4 {
		wg.Go(func() { download(dctx, m, web, fmt.Sprint("capped", i), &got) })
	}
	time.Sleep(6 * time.Second)
	moved, elapsed := got.Load(), time.Since(start)
	stop()
	wg.Wait()
	// The guard reads each cell it relays once and writes it once; a
	// data cell carries at most 4,096 bytes, so the data received is at
	// most what its read bucket passed: the burst (the rate) plus the
	// rate times the time.
	limit := int64(rate + rate*elapsed.Seconds())
	t.Logf("%d bytes in %.1f s through a guard capped at 1 MiB/s: %.2f MiB/s, at most %d allowed", moved, elapsed.Seconds(), float64(moved)/elapsed.Seconds()/(1<<20), limit)
	if moved > limit {
		t.Errorf("the capped guard passed %d bytes in %v, more than burst + rate x time = %d", moved, elapsed, limit)
	}
	if moved == 0 {
		t.Error("nothing moved through the capped guard")
	}
}

// download fetches a large file through the proxy until ctx ends, adding
// the bytes it receives to got.
func download(ctx context.Context, m testnet.Manifest, web netip.AddrPort, user string, got *atomic.Int64) {
	for ctx.Err() == nil {
		c, err := testnet.DialSOCKS(ctx, m.Socks, web, user, "x")
		if err != nil {
			return
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		fmt.Fprintf(c, "GET /bytes/%d HTTP/1.0\r\nHost: x\r\n\r\n", int64(1)<<34)
		if resp, err := http.ReadResponse(bufio.NewReaderSize(c, 64<<10), nil); err == nil {
			buf := make([]byte, 64<<10)
			for {
				k, err := resp.Body.Read(buf)
				got.Add(int64(k))
				if err != nil {
					break
				}
			}
		}
		stop()
		c.Close()
	}
}

// TestAccountingHibernatesThroughProcesses (issue 16 item 3): a relay
// process with accounting_max = 2MiB counting what it receives (the
// seed's bandwidth measurements, 1 MiB each, spend it) logs that it
// hibernates, leaves the consensus, and keeps its count in data_dir: started
// again in the same period, it hibernates at once and stays out.
func TestAccountingHibernatesThroughProcesses(t *testing.T) {
	n := newLocalNet(t)
	startProc(t, "seed", "--config", n.seedCfg)
	cfg := n.relayConfig("alpha", false)
	setConfigLine(t, cfg, "accounting_max", quote("2MiB"))
	setConfigLine(t, cfg, "accounting_rule", quote("in"))
	setConfigLine(t, cfg, "accounting_start", quote("month 1 00:00"))
	p := startProc(t, "relay", "--config", cfg)
	n.waitRelays(t, "alpha")
	waitLog(t, p, "hibernating: accounting_max (2MiB")
	took := n.waitRelays(t)
	t.Logf("out of the consensus %v after the hibernation was logged", took)
	p.signal(t, syscall.SIGTERM)

	raw, err := os.ReadFile(filepath.Join(filepath.Dir(cfg), "alpha", "accounting.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ In, Out uint64 }
	if err := json.Unmarshal(raw, &st); err != nil || st.In < 2<<20 {
		t.Fatalf("accounting.json after hibernating: %s (%v)", raw, err)
	}
	t.Logf("accounting.json: %s", strings.TrimSpace(string(raw)))

	p2 := startProc(t, "relay", "--config", cfg)
	waitLog(t, p2, "hibernating: accounting_max")
	n.waitRelays(t)
	select {
	case <-p2.done:
		t.Fatalf("the restarted relay exited:\n%s", p2.stderr.String())
	case <-time.After(3 * time.Second):
	}
	if got, err := n.relays(t); err != nil || got["alpha"] {
		t.Fatalf("the restarted, hibernating relay is in the consensus: %v %v", got, err)
	}
}
