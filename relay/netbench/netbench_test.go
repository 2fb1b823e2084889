package netbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestQuick runs the whole harness in its tiny mode against a real
// testnet: 2 circuits, 1 MB downloads, no Tor, no ceiling.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("builds veil and runs a testnet of processes")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "veil")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		// Every veil process writes what the race detector finds to
		// race/veil.PID; they inherit GORACE from here.
		args = append(args, "-race")
		if err := os.Mkdir(filepath.Join(dir, "race"), 0o700); err != nil {
			t.Fatal(err)
		}
		t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" log_path="+filepath.Join(dir, "race", "veil")))
	}
	if out, err := exec.Command("go", append(args, "veil/cmd/veil")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// A hang detector, not a speed check: the quick run takes seconds
	// alone, minutes on a loaded two-core machine under -race.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var log bytes.Buffer
	r, err := Run(ctx, Options{Dir: filepath.Join(dir, "bench"), Binary: bin, Quick: true, Log: &log})
	t.Log("\n" + log.String())
	// Run has stopped every process: their reports are complete.
	reports, _ := filepath.Glob(filepath.Join(dir, "race", "veil.*"))
	for _, f := range reports {
		report, _ := os.ReadFile(f)
		t.Errorf("the race detector found a data race in veil process %s:\n%s", strings.TrimPrefix(filepath.Ext(f), "."), report)
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.StartToFirstFetchS <= 0 || r.CircuitBuildMS.N != 2 || r.Fetch1KMS.N == 0 || r.Fetch1KSocksMS.N == 0 ||
		len(r.Single) != 1 || r.Single[0].MBps <= 0 || len(r.Concurrent["isolated_2"]) != 1 ||
		r.Memory == nil || r.Memory.Circuits == 0 || r.Ceiling.Measured || r.Tor != nil ||
		len(r.ShareFetch) != 1 || !r.ShareFetch[0].BitExact || r.ShareFetch[0].Share.MBps <= 0 || r.ShareFetch[0].Fetch.MBps <= 0 ||
		r.ShareFetch[0].Share.ClientCPUS <= 0 || r.ShareFetch[0].Fetch.CPUMsPerMB <= 0 {
		b, _ := json.MarshalIndent(r, "", " ")
		t.Fatalf("incomplete results:\n%s", b)
	}
	var table bytes.Buffer
	r.WriteTable(&table)
	if !strings.Contains(table.String(), "| single stream") {
		t.Fatalf("table:\n%s", table.String())
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
	// Everything stopped: no relay is left.
	if _, err := os.Stat(filepath.Join(dir, "bench", "testnet", "testnet.json")); err == nil {
		t.Error("the testnet's manifest is still there: not stopped")
	}
}

func TestReadTorSummary(t *testing.T) {
	p := filepath.Join(t.TempDir(), "summary.json")
	// As bench.py writes it: most figures are {median, min, max, n}.
	m := func(v float64) string { return fmt.Sprintf(`{"median": %v, "min": 1, "max": 99, "n": 1}`, v) }
	doc := `{"meta": {}, "summary": {"first_fetch_s": ` + m(11.5) + `, "circuit_ms_pooled": {"n": 50, "median": 15.2, "p5": 9, "p95": 24.0},
		"bulk_MBps": ` + m(9.9) + `, "bulk_tor_cpu_ms_per_MB": 60.1, "latency_tor_median_ms": ` + m(37.5) + `, "latency_tor_p95_ms": ` + m(80) + `,
		"latency_tor_ttfb_median_ms": null, "onion_errors": [],
		"concurrency_aggregate_MBps": {"shared_8": ` + m(7) + `, "isolated_8": ` + m(29.1) + `, "isolated_32": ` + m(31.2) + `}}}`
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := readTorSummary(p)
	if err != nil {
		t.Fatal(err)
	}
	if f.FirstFetchS != 11.5 || f.CircuitMS != 15.2 || f.CircuitP95MS != 24 || f.SingleMBps != 9.9 || f.CPUMsPerMB != 60.1 ||
		f.Fetch1KMS != 37.5 || f.Fetch1KP95MS != 80 || f.Isolated8MBps != 29.1 || f.Isolated32MBps != 31.2 {
		t.Fatalf("%+v", f)
	}
	if m := resultsIn.FindStringSubmatch("...\nresults in /tmp/tornet/results/20261123-155800\nhost-namespace tor sockets: 0\n"); m == nil ||
		m[1] != "/tmp/tornet/results/20261123-155800" {
		t.Fatalf("results line: %q", m)
	}
}

// TestReadTorOnion reads the onion-service figures as bench.py's
// summarize writes them: after a download, after a test that raised, and
// after one whose downloads all failed (med() of nothing is null).
func TestReadTorOnion(t *testing.T) {
	m := func(v float64) string { return fmt.Sprintf(`{"median": %v, "min": %v, "max": %v, "n": 1}`, v, v, v) }
	for _, c := range []struct {
		name, onion string
		mbps, cpu   float64
		err         string
	}{
		{"ran", `"onion_reachable_s": ` + m(5.2) + `, "onion_latency_1K_median_ms": ` + m(54.1) + `,
			"onion_bulk_MBps": ` + m(1.2949) + `, "onion_bulk_ttfb_ms": ` + m(33.0) + `,
			"onion_tor_cpu_ms_per_MB": ` + m(318.4) + `, "onion_bulk_other_cores": [0.9], "onion_errors": []`, 1.2949, 318.4, ""},
		{"raised", `"onion_errors": ["onion not reachable in 600s: {'code': 0}"]`, 0, 0, "onion not reachable in 600s: {'code': 0}"},
		{"downloads failed", `"onion_reachable_s": ` + m(5.0) + `, "onion_latency_1K_median_ms": ` + m(50) + `,
			"onion_bulk_MBps": null, "onion_bulk_ttfb_ms": null, "onion_tor_cpu_ms_per_MB": null, "onion_bulk_other_cores": [], "onion_errors": []`, 0, 0, ""},
		{"not asked", `"onion_errors": []`, 0, 0, ""},
	} {
		p := filepath.Join(t.TempDir(), "summary.json")
		doc := `{"meta": {}, "summary": {"bulk_MBps": ` + m(9.9) + `, ` + c.onion + `, "safety_violations": 0}}`
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := readTorSummary(p)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if f.OnionMBps != c.mbps || f.OnionCPUMsPerMB != c.cpu || f.OnionError != c.err || f.SingleMBps != 9.9 {
			t.Errorf("%s: onion %v MB/s, %v ms/MB, error %q", c.name, f.OnionMBps, f.OnionCPUMsPerMB, f.OnionError)
		}
	}
}

func TestCeilingLine(t *testing.T) {
	line := "chain-tls      median   425 MB/s  min   410  max   431  CPU 1.96 cores = 4.61 core-s/GB (medians)  (3 x 1024 MiB, buf 64 KiB)  runs=[410 425 431]"
	m := ceilingLine.FindStringSubmatch(line)
	if m == nil || m[1] != "425" || m[2] != "410 425 431" {
		t.Fatalf("%q", m)
	}
	if ceilingLine.MatchString("chain-tls-ctr  median   300 MB/s  runs=[300]") {
		t.Fatal("chain-tls-ctr taken for chain-tls")
	}
}

func TestSummarize(t *testing.T) {
	s := summarize([]float64{5, 1, 4, 2, 3})
	if s.Median != 3 || s.Min != 1 || s.Max != 5 || s.P95 != 4.8 || s.N != 5 {
		t.Fatalf("%+v", s)
	}
}

// TestShareRows: share and fetch beside Tor's onion download, from this
// run's Tor or results.md, with the 50 MB/s target judged.
func TestShareRows(t *testing.T) {
	rowsOf := func(r *Results) map[string]Row {
		_, rows := r.Table()
		out := map[string]Row{}
		for _, x := range rows {
			for _, k := range []string{"share ", "fetch ", "CPU per MB, share", "CPU per MB, fetch"} {
				if strings.HasPrefix(x.Figure, k) {
					out[k] = x
				}
			}
		}
		if len(out) != 4 {
			t.Fatalf("share rows missing: %v", out)
		}
		return out
	}
	sf := func(share, fetch float64) *ShareFetch {
		return &ShareFetch{Bytes: 100e6, BitExact: true,
			Share: &FileOp{MBps: share, CPUMsPerMB: 1000 / share, ClientCPUS: 1, RelayCPUS: 1.14},
			Fetch: &FileOp{MBps: fetch, CPUMsPerMB: 30, ClientCPUS: 1.5, RelayCPUS: 1.5}}
	}
	r := &Results{ShareFetch: []*ShareFetch{sf(62.5, 40), sf(50, 45), sf(80, 30)}}
	rows := rowsOf(r)
	if x := rows["share "]; !strings.Contains(x.Figure, "100 MB") || x.Veil != "62.5 MB/s (median of 3; 50.0-80.0)" || x.Tor != "1.30 MB/s" ||
		x.Target != "≥ 50 MB/s" || x.Met != "yes" {
		t.Errorf("share row without Tor this run: %+v", x)
	}
	if x := rows["fetch "]; x.Veil != "40.0 MB/s (median of 3; 30.0-45.0)" || x.Met != "**no**" {
		t.Errorf("fetch row: %+v", x)
	}
	if x := rows["CPU per MB, share"]; x.Veil != "16.0 ms/MB (medians: client 1.00 s, relays 1.14 s)" || x.Tor != "318 ms/MB" {
		t.Errorf("share CPU row: %+v", x)
	}

	r.ShareFetch = []*ShareFetch{sf(60, 60)}
	r.ShareFetch[0].BitExact = false
	if x := rowsOf(r)["fetch "]; x.Met != "**no** (not bit-exact)" {
		t.Errorf("a fetch that is not bit-exact: %+v", x)
	}

	r.Tor = &TorFigures{OnionMBps: 2.25, OnionCPUMsPerMB: 200}
	if x := rowsOf(r)["share "]; x.Tor != "2.25 MB/s" {
		t.Errorf("Tor from this run: %+v", x)
	}
	r.Tor = &TorFigures{OnionError: "onion not reachable in 600s"}
	if x := rowsOf(r)["share "]; x.Tor != "failed this run: onion not reachable in 600s; results.md: 1.30 MB/s" {
		t.Errorf("Tor's onion test failed: %+v", x)
	}

	r = &Results{ShareFetch: []*ShareFetch{sf(70, 70), {Bytes: 100e6, Share: &FileOp{Seconds: 3}}}}
	if x := rowsOf(r); x["share "].Veil != "70.0 MB/s (median of 1; 1 failed)" || x["share "].Met != "**no**" || x["fetch "].Met != "yes" {
		t.Errorf("a failed share: %+v", x)
	}
	r = &Results{ShareFetch: []*ShareFetch{{Bytes: 100e6, Share: &FileOp{Seconds: 3}}}}
	if x := rowsOf(r); x["share "].Veil != "failed (see the errors below)" || x["share "].Met != "**no**" || x["fetch "].Met != "not measured" {
		t.Errorf("a failed share: %+v", x)
	}
	if x := rowsOf(&Results{}); x["share "].Met != "not measured" || x["share "].Veil != "" {
		t.Errorf("share not run: %+v", x)
	}
}
