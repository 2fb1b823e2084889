// Package netbench is `make bench`'s network benchmark (cmd/veilbench): it
// starts a fresh testnet of real veil processes on 127.0.0.1 and measures
// what issue 4 asks for (start to first fetch, circuit build time, 1 KB
// fetches over built circuits, single-stream and concurrent throughput
// through the SOCKS proxy, relay CPU per MB, relay memory per idle
// circuit) and, as issue 5 asks, `veil share` and `veil fetch` of a
// 100 MB file through the same testnet; then, each in its own subprocess and after the testnet is
// stopped, the TLS-chain ceiling (../shared/anchors/limits, cmd/netbench)
// and optionally the private Tor network (../shared/anchors/tor,
// run_all.sh). Report renders the figures beside Tor's as markdown.
//
// MB is 10^6 bytes everywhere, as in the anchors.
package netbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"veil/relay/testnet"
)

// MB is a megabyte as the anchors count it.
const MB = 1e6

// Options say what to measure.
type Options struct {
	// Dir holds the testnet (Dir/testnet), logs of the subprocesses
	// (Dir/tor.log, Dir/ceiling.log) and the built netbench binary.
	Dir string
	// Binary is the veil executable the testnet runs.
	Binary string
	// Relays and Seeds size the testnet; 0 means 6 and 1.
	Relays, Seeds int
	// Runs repeats the throughput tests (single stream, 8 and 32
	// streams, share and fetch) and the ceiling's chain-tls test; 0
	// means 3.
	Runs int
	// Quick is a smoke run for tests: 2 circuits, 1 MB downloads, a
	// handful of samples; it implies no Tor and no ceiling.
	Quick bool
	// Ceiling runs the TLS-chain ceiling from LimitsDir.
	Ceiling   bool
	LimitsDir string
	// Tor runs the private Tor network from TorDir (needs root); TorNoKIST
	// runs it a second time with `Schedulers Vanilla`.
	Tor, TorNoKIST bool
	TorDir         string
	// TorTimeout bounds each Tor run; 0 means 45 minutes.
	TorTimeout time.Duration
	// Log receives progress lines; nil means none.
	Log io.Writer
}

// sizes are what each test moves; Quick shrinks them.
type sizes struct {
	circuits    int   // timed circuit builds
	fetches     int   // 1 KB fetches on one built circuit, and through SOCKS
	single      int64 // bytes of the single-stream download
	concurrency []int // stream counts
	concBytes   map[int]int64
	// idle is how many idle circuits the memory figure opens. They all
	// go through the client's one guard, so it stays under the share one
	// client address may hold at a relay (relay/internal/dos:
	// max_circuits/8 = 512 by default); past it the guard refuses
	// CREATEs, as it must, and the step would only wait on refusals.
	idle  int
	share int64 // bytes of the file shared and fetched
}

func sizesFor(o Options) sizes {
	if o.Quick {
		return sizes{circuits: 2, fetches: 5, single: 1 << 20, concurrency: []int{2},
			concBytes: map[int]int64{2: 1 << 20}, idle: 10, share: 1e6}
	}
	return sizes{circuits: 50, fetches: 100, single: 200 << 20, concurrency: []int{8, 32},
		concBytes: map[int]int64{8: 32 << 20, 32: 16 << 20}, idle: 480, share: 100 * MB}
}

// Results is everything measured, raw samples included; cmd/veilbench
// writes it as JSON.
type Results struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Machine  Machine   `json:"machine"`
	Quick    bool      `json:"quick"`
	Runs     int       `json:"runs"`
	Relays   int       `json:"relays"`
	Seeds    int       `json:"seeds"`
	Dir      string    `json:"dir"`

	// StartToFirstFetchS is testnet.Start: configs and keys written,
	// every process started, the consensus listing every relay, the
	// proxy started and one request carried through three relays.
	StartToFirstFetchS float64 `json:"start_to_first_fetch_s"`

	// FirstBuildMS is the first circuit build, which also opens the TLS
	// link to the guard; it is not among CircuitBuildMS.
	FirstBuildMS   float64 `json:"first_build_ms"`
	CircuitBuildMS Samples `json:"circuit_build_ms"`
	// BuildFailures counts every Build that failed, in any test; each was
	// retried on a fresh path. BuildErrors are the first few.
	BuildFailures int      `json:"build_failures"`
	BuildErrors   []string `json:"build_errors,omitempty"`
	// Over one built circuit, with the client library: BEGIN until
	// CONNECTED, request until the first response byte, and the whole
	// fetch (BEGIN until the 1024th body byte).
	StreamOpenMS Samples `json:"stream_open_ms"`
	TTFB1KMS     Samples `json:"ttfb_1k_ms"`
	Fetch1KMS    Samples `json:"fetch_1k_ms"`
	// Through the SOCKS proxy on a circuit it already built, as Tor's
	// figure is taken with curl: SOCKS handshake, BEGIN, request and
	// the whole 1 KB response.
	Fetch1KSocksMS Samples `json:"fetch_1k_socks_ms"`

	Single     []Transfer         `json:"single_stream"`
	Concurrent map[string][]Burst `json:"concurrent"` // "isolated_8", ...
	Memory     *Memory            `json:"memory,omitempty"`
	ShareFetch []*ShareFetch      `json:"share_fetch,omitempty"`
	Ceiling    Ceiling            `json:"ceiling"`
	Tor        *TorFigures        `json:"tor,omitempty"`
	TorNoKIST  *TorFigures        `json:"tor_no_kist,omitempty"`
	Errors     []string           `json:"errors,omitempty"`
}

// Machine describes where the figures were taken.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go"`
	Kernel    string `json:"kernel"`
}

// Run starts a testnet, measures it, stops it, then runs the ceiling and
// Tor as asked. It returns what it measured even when a later step fails;
// the error says what did not run. Every process and goroutine it started
// has ended when it returns.
func Run(ctx context.Context, o Options) (*Results, error) {
	if o.Binary == "" {
		return nil, errors.New("netbench: no veil binary")
	}
	if o.Dir == "" {
		return nil, errors.New("netbench: no directory")
	}
	if o.Relays == 0 {
		o.Relays = testnet.DefaultRelays
	}
	if o.Seeds == 0 {
		o.Seeds = testnet.DefaultSeeds
	}
	if o.Runs <= 0 {
		o.Runs = 3
	}
	if o.Quick {
		o.Runs, o.Ceiling, o.Tor, o.TorNoKIST = 1, false, false, false
	}
	if o.TorTimeout == 0 {
		o.TorTimeout = 45 * time.Minute
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	o.Dir = dir
	// share and fetch run in Dir, where a relative path such as
	// bin/veil (the Makefile's) names nothing; a bare name is looked up
	// in PATH and stays as it is.
	if strings.ContainsRune(o.Binary, filepath.Separator) {
		if o.Binary, err = filepath.Abs(o.Binary); err != nil {
			return nil, fmt.Errorf("netbench: veil binary: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	r := &Results{Started: time.Now().UTC(), Quick: o.Quick, Runs: o.Runs, Relays: o.Relays, Seeds: o.Seeds, Dir: dir,
		Machine: Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Kernel: kernel()},
		Ceiling: Ceiling{Reason: "not run (interrupted or an earlier step failed)"}}
	defer func() { r.Finished = time.Now().UTC() }()

	var errs []error
	fail := func(what string, err error) {
		errs = append(errs, fmt.Errorf("%s: %w", what, err))
		r.Errors = append(r.Errors, what+": "+err.Error())
		logf(o.Log, "%s failed: %v", what, err)
	}
	if err := measureVeil(ctx, o, r); err != nil {
		errs = append(errs, err)
		if len(r.Errors) == 0 { // else each failed step is there already
			r.Errors = append(r.Errors, "veil: "+err.Error())
		}
		logf(o.Log, "veil: %v", err)
	}
	if ctx.Err() != nil {
		return r, errors.Join(append(errs, ctx.Err())...)
	}
	if o.Ceiling {
		r.Ceiling = measureCeiling(ctx, o)
	} else {
		r.Ceiling = Ceiling{Reason: "not asked for"}
		if o.Quick {
			r.Ceiling.Reason = "quick run"
		}
	}
	if o.Tor && ctx.Err() == nil {
		t, err := runTor(ctx, o, "tor.log", true)
		if err != nil {
			fail("tor", err)
		}
		r.Tor = t
	}
	if o.TorNoKIST && ctx.Err() == nil {
		t, err := runTor(ctx, o, "tor-nokist.log", false, "--extra", "Schedulers Vanilla")
		if err != nil {
			fail("tor without KIST", err)
		}
		r.TorNoKIST = t
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return r, errors.Join(errs...)
}

func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
