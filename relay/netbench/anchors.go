package netbench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// command runs name args in dir, in a process group of its own so that a
// cancelled ctx can interrupt all of it (a shell, tor, go run's child):
// SIGINT to the group first, as Ctrl-C in a terminal would, SIGKILL to
// the group after grace. Output goes to out.
func command(ctx context.Context, dir string, out io.Writer, grace time.Duration, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = grace
	return cmd
}

// run starts cmd and waits; once ctx is done and grace has passed it kills
// what is left of the process group.
func run(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	pgid := cmd.Process.Pid
	err := cmd.Wait()
	if errors.Is(err, exec.ErrWaitDelay) || cmd.ProcessState == nil || !cmd.ProcessState.Exited() {
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
	return err
}

// ceilingLine is netbench's result line for one test, e.g.
// "chain-tls      median   425 MB/s  min   425  max   425  CPU ... runs=[425 430]".
var ceilingLine = regexp.MustCompile(`^chain-tls\s+median\s+([0-9.]+) MB/s.*runs=\[([0-9. ]*)\]`)

// measureCeiling builds the limits anchor's netbench and runs only its
// chain-tls test: src -> r1 -> r2 -> r3 -> sink over TLS 1.3, every
// relay decrypting and re-encrypting, no onion crypto.
func measureCeiling(ctx context.Context, o Options) Ceiling {
	c := Ceiling{}
	if o.LimitsDir == "" {
		c.Reason = "no limits directory given"
		return c
	}
	if _, err := os.Stat(filepath.Join(o.LimitsDir, "cmd", "netbench")); err != nil {
		c.Reason = fmt.Sprintf("cannot run: %v", err)
		return c
	}
	logPath := filepath.Join(o.Dir, "ceiling.log")
	lf, err := os.Create(logPath)
	if err != nil {
		c.Reason = err.Error()
		return c
	}
	defer lf.Close()
	bin := filepath.Join(o.Dir, "netbench")
	logf(o.Log, "TLS-chain ceiling: building %s/cmd/netbench", o.LimitsDir)
	bctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	err = run(command(bctx, o.LimitsDir, lf, 5*time.Second, "go", "build", "-o", bin, "./cmd/netbench"))
	cancel()
	if err != nil {
		c.Reason = fmt.Sprintf("build failed: %v (log: %s)", err, logPath)
		logf(o.Log, "ceiling not measured: %s", c.Reason)
		return c
	}
	args := []string{"-only", "chain-tls", "-runs", strconv.Itoa(o.Runs), "-handshakes", "20"}
	c.Command = fmt.Sprintf("(cd %s && go run ./cmd/netbench %s)", o.LimitsDir, strings.Join(args, " "))
	logf(o.Log, "TLS-chain ceiling: %s", c.Command)
	var out strings.Builder
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err = run(command(rctx, o.LimitsDir, io.MultiWriter(lf, &out), 5*time.Second, bin, args...))
	cancel()
	if err != nil {
		c.Reason = fmt.Sprintf("netbench failed: %v (log: %s)", err, logPath)
		logf(o.Log, "ceiling not measured: %s", c.Reason)
		return c
	}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		m := ceilingLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		c.Line = sc.Text()
		c.MBps, _ = strconv.ParseFloat(m[1], 64)
		for _, f := range strings.Fields(m[2]) {
			v, err := strconv.ParseFloat(f, 64)
			if err == nil {
				c.Runs = append(c.Runs, v)
			}
		}
		c.Measured = c.MBps > 0
	}
	if !c.Measured {
		c.Reason = fmt.Sprintf("no chain-tls line in netbench's output (log: %s)", logPath)
	}
	logf(o.Log, "TLS-chain ceiling: %.0f MB/s median of %v", c.MBps, c.Runs)
	return c
}

// TorFigures are the Tor anchor's figures the table uses.
type TorFigures struct {
	Source         string  `json:"source"` // "this run: PATH" or "results.md ..."
	FirstFetchS    float64 `json:"first_fetch_s"`
	CircuitMS      float64 `json:"circuit_build_median_ms"`
	CircuitP95MS   float64 `json:"circuit_build_p95_ms"`
	Fetch1KMS      float64 `json:"fetch_1k_median_ms"`
	Fetch1KP95MS   float64 `json:"fetch_1k_p95_ms"`
	TTFB1KMS       float64 `json:"ttfb_1k_median_ms,omitempty"`
	SingleMBps     float64 `json:"single_stream_MBps"`
	Isolated8MBps  float64 `json:"isolated_8_MBps"`
	Isolated32MBps float64 `json:"isolated_32_MBps,omitempty"`
	CPUMsPerMB     float64 `json:"cpu_ms_per_MB"`
	// OnionMBps and OnionCPUMsPerMB are the onion-service test: a 200
	// MiB download from a .onion (a 6-relay rendezvous path) and the CPU
	// of all tor processes per MB; zero when it did not run. OnionError
	// is why it failed, when it ran and failed.
	OnionMBps       float64 `json:"onion_MBps,omitempty"`
	OnionCPUMsPerMB float64 `json:"onion_cpu_ms_per_MB,omitempty"`
	OnionError      string  `json:"onion_error,omitempty"`
	// Summary is summary.json's "summary" as the anchor wrote it.
	Summary json.RawMessage `json:"summary,omitempty"`
}

// TorResultsMD is the Tor anchor's results.md (2026-11-23): the pooled
// main run (5 networks) for Tor's defaults.
var TorResultsMD = TorFigures{
	Source:      "results.md (2026-11-23, 5 networks pooled; not this run)",
	FirstFetchS: 11.0, CircuitMS: 15.7, CircuitP95MS: 24.2, Fetch1KMS: 38, Fetch1KP95MS: 88,
	SingleMBps: 10.2, Isolated8MBps: 29.7, Isolated32MBps: 31.7, CPUMsPerMB: 63,
	OnionMBps: 1.3, OnionCPUMsPerMB: 318,
}

// TorNoKISTResultsMD is results.md's `Schedulers Vanilla` side
// experiment (one network; no 32-stream test, no first-fetch figure, no
// onion service).
var TorNoKISTResultsMD = TorFigures{
	Source:    "results.md side experiment `Schedulers Vanilla` (1 network; not this run)",
	CircuitMS: 4.9, CircuitP95MS: 30.7, Fetch1KMS: 4.7, Fetch1KP95MS: 55.8,
	SingleMBps: 19.8, Isolated8MBps: 28.5, CPUMsPerMB: 47,
}

// resultsIn is the line bench.py ends with.
var resultsIn = regexp.MustCompile(`(?m)^results in (\S+)\s*$`)

// runTor runs the Tor anchor's run_all.sh (root: it makes a network
// namespace), logging to Dir/logName, and reads its summary.json. With
// onion it also runs the onion-service test, one 200 MiB download: that
// is Tor's figure beside share and fetch, and it adds a few minutes.
func runTor(ctx context.Context, o Options, logName string, onion bool, extra ...string) (*TorFigures, error) {
	script := filepath.Join(o.TorDir, "run_all.sh")
	if _, err := os.Stat(script); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("run_all.sh needs root (it creates a network namespace)")
	}
	logPath := filepath.Join(o.Dir, logName)
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	onionArgs := []string{"--onion", "0"}
	if onion {
		onionArgs = []string{"--onion", "1", "--onion-reps", "1"}
	}
	args := slices.Concat([]string{"run_all.sh", "--runs", "1", "--conc", "8", "32"}, onionArgs, extra)
	logf(o.Log, "Tor: (cd %s && bash %s) > %s; this takes several minutes", o.TorDir, strings.Join(args, " "), logPath)
	var out strings.Builder
	tctx, cancel := context.WithTimeout(ctx, o.TorTimeout)
	defer cancel()
	// bench.py stops every tor it started on SIGINT; a minute is plenty.
	err = run(command(tctx, o.TorDir, io.MultiWriter(lf, &out), time.Minute, "bash", args...))
	if err != nil {
		return nil, fmt.Errorf("run_all.sh: %w (log: %s)", err, logPath)
	}
	m := resultsIn.FindAllStringSubmatch(out.String(), -1)
	if m == nil {
		return nil, fmt.Errorf("run_all.sh printed no \"results in\" line (log: %s)", logPath)
	}
	summary := filepath.Join(m[len(m)-1][1], "summary.json")
	t, err := readTorSummary(summary)
	if err != nil {
		return nil, err
	}
	logf(o.Log, "Tor: single stream %.1f MB/s, 8/32 isolated %.1f/%.1f MB/s, circuit %.1f ms, 1 KB %.1f ms, first fetch %.1f s (%s)",
		t.SingleMBps, t.Isolated8MBps, t.Isolated32MBps, t.CircuitMS, t.Fetch1KMS, t.FirstFetchS, summary)
	if onion {
		if t.OnionMBps == 0 && t.OnionError == "" {
			t.OnionError = "summary.json has no onion download"
		}
		logf(o.Log, "Tor onion service: 200 MiB download %.2f MB/s, %.0f ms/MB of tor CPU %s", t.OnionMBps, t.OnionCPUMsPerMB, t.OnionError)
	}
	return t, nil
}

// readTorSummary reads bench.py's summary.json.
func readTorSummary(path string) (*TorFigures, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Summary json.RawMessage `json:"summary"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// bench.py writes most figures as {"median", "min", "max", "n"} and
	// some (circuit_ms_pooled) with percentiles too; med takes either
	// form, or a bare number.
	var s struct {
		FirstFetchS   med `json:"first_fetch_s"`
		CircuitPooled struct {
			Median *float64 `json:"median"`
			P95    *float64 `json:"p95"`
		} `json:"circuit_ms_pooled"`
		BulkMBps        med            `json:"bulk_MBps"`
		CPUMsPerMB      med            `json:"bulk_tor_cpu_ms_per_MB"`
		LatencyMedianMS med            `json:"latency_tor_median_ms"`
		LatencyP95MS    med            `json:"latency_tor_p95_ms"`
		TTFBMedianMS    med            `json:"latency_tor_ttfb_median_ms"`
		Concurrency     map[string]med `json:"concurrency_aggregate_MBps"`
		OnionMBps       med            `json:"onion_bulk_MBps"`
		OnionCPUMsPerMB med            `json:"onion_tor_cpu_ms_per_MB"`
		OnionErrors     []string       `json:"onion_errors"`
	}
	if err := json.Unmarshal(doc.Summary, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f := func(p *float64) float64 {
		if p == nil {
			return 0
		}
		return *p
	}
	return &TorFigures{Source: "this run: " + path, Summary: doc.Summary,
		FirstFetchS: float64(s.FirstFetchS), CircuitMS: f(s.CircuitPooled.Median), CircuitP95MS: f(s.CircuitPooled.P95),
		Fetch1KMS: float64(s.LatencyMedianMS), Fetch1KP95MS: float64(s.LatencyP95MS), TTFB1KMS: float64(s.TTFBMedianMS),
		SingleMBps: float64(s.BulkMBps), Isolated8MBps: float64(s.Concurrency["isolated_8"]),
		Isolated32MBps: float64(s.Concurrency["isolated_32"]), CPUMsPerMB: float64(s.CPUMsPerMB),
		OnionMBps: float64(s.OnionMBps), OnionCPUMsPerMB: float64(s.OnionCPUMsPerMB), OnionError: strings.Join(s.OnionErrors, "; ")}, nil
}

// med is a figure of summary.json: a number, null, or an object with a
// median.
type med float64

func (m *med) UnmarshalJSON(b []byte) error {
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		return err
	}
	switch v := x.(type) {
	case nil:
		*m = 0
	case float64:
		*m = med(v)
	case map[string]any:
		if v["median"] == nil {
			*m = 0
			return nil
		}
		f, ok := v["median"].(float64)
		if !ok {
			return fmt.Errorf("median is %T", v["median"])
		}
		*m = med(f)
	default:
		return fmt.Errorf("a figure is %T", x)
	}
	return nil
}
