// Command veilbench is `make bench`'s network benchmark (run it as
// `go run ./cmd/veilbench`): it starts a fresh testnet of real veil
// processes on 127.0.0.1 (from -veil, which `make build` makes), measures
// circuit builds, 1 KB fetches, single-stream and concurrent throughput,
// relay CPU per MB, relay memory per idle circuit and `veil share` and
// `veil fetch` of a 100 MB file, then the TLS-chain ceiling of
// ../shared/anchors/limits and, with -tor, the private Tor network of
// ../shared/anchors/tor (its onion-service download included), and prints
// a markdown table of veil beside Tor with the targets of issues 4 and 5.
// Raw samples go to -out as JSON. The measurements are in relay/netbench.
//
//	go run ./cmd/veilbench [-dir DIR] [-tor] [-runs N] [-out results.json]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"veil/relay/netbench"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		o   netbench.Options
		out string
	)
	flag.StringVar(&o.Dir, "dir", "", "directory for the testnet, logs and tor.log (default: a new temporary directory, kept)")
	flag.StringVar(&o.Binary, "veil", "bin/veil", "the veil binary the testnet runs (`make build` makes bin/veil)")
	flag.BoolVar(&o.Tor, "tor", false, "also run the Tor anchor (run_all.sh --runs 1 --conc 8 32 --onion 1 --onion-reps 1; needs root, takes ~10 minutes)")
	flag.BoolVar(&o.TorNoKIST, "tor-nokist", false, "also run the Tor anchor with --extra 'Schedulers Vanilla' (Tor without KIST)")
	flag.IntVar(&o.Runs, "runs", 3, "repetitions of each throughput test and of the ceiling")
	flag.IntVar(&o.Relays, "relays", 6, "relays in the testnet")
	flag.BoolVar(&o.Quick, "quick", false, "a smoke run with tiny sizes (no Tor, no ceiling)")
	ceiling := flag.Bool("ceiling", true, "measure the TLS-chain ceiling")
	flag.StringVar(&o.LimitsDir, "limits", "../shared/anchors/limits", "the limits anchor (for cmd/netbench)")
	flag.StringVar(&o.TorDir, "tordir", "../shared/anchors/tor", "the Tor anchor (for run_all.sh)")
	flag.DurationVar(&o.TorTimeout, "tor-timeout", 45*time.Minute, "bound on each Tor run")
	flag.StringVar(&out, "out", "", "write every raw sample as JSON here")
	flag.Parse()
	o.Ceiling = *ceiling
	o.Log = os.Stderr
	o.Seeds = 1

	if _, err := os.Stat(o.Binary); err != nil {
		fmt.Fprintf(os.Stderr, "veilbench: %v (run `make build` first, or give -veil)\n", err)
		return 2
	}
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "veilbench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "veilbench:", err)
			return 1
		}
		o.Dir = d
	}
	fmt.Fprintf(os.Stderr, "veilbench: working in %s\n", o.Dir)

	// Ctrl-C or SIGTERM cancels the run; everything started stops.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := netbench.Run(ctx, o)
	if r == nil {
		fmt.Fprintln(os.Stderr, "veilbench:", err)
		return 1
	}
	fmt.Println()
	r.WriteTable(os.Stdout)
	if out != "" {
		b, jerr := json.MarshalIndent(r, "", " ")
		if jerr == nil {
			jerr = os.WriteFile(out, append(b, '\n'), 0o644)
		}
		if jerr != nil {
			fmt.Fprintln(os.Stderr, "veilbench:", jerr)
			return 1
		}
		fmt.Fprintf(os.Stderr, "veilbench: raw samples in %s\n", out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "veilbench:", err)
		return 1
	}
	return 0
}
