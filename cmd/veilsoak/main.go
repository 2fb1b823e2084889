// Command veilsoak is `make soak`: it starts a testnet of real veil
// processes on 127.0.0.1 (from -veil, which `make build` makes), or
// attaches to a running one, and for -duration loads it with a mix of
// HTTP fetches through the SOCKS proxy (keep-alive connections dropped by
// the client, "Connection: close", and connections the client closes
// while the server would keep them) and, every so often, a `veil share`
// and `veil fetch` checked bit for bit. It samples the RSS, open fds,
// CLOSE_WAIT sockets and (where /metrics serves them) goroutines of every
// process after a warm-up and at the end, both on a settled network, and
// prints operations and failures per kind and each process's growth
// extrapolated to an hour, against issue 12's targets: no failure, and
// growth under 5 MB and 10 fds an hour per process. It exits 1 when a
// target is missed.
//
//	go run ./cmd/veilsoak [-veil bin/veil] [-duration 10m] [-attach DIR] [-out soak.json]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	flag.StringVar(&o.veil, "veil", "bin/veil", "the veil binary (`make build` makes bin/veil)")
	attach := flag.String("attach", "", "soak the running testnet in this directory (its testnet.json) instead of starting one")
	flag.StringVar(&o.dir, "dir", "", "work directory: the testnet, its output, logs of failed shares (default: a new temporary directory, kept)")
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long to load the network, warm-up included")
	flag.DurationVar(&o.warmup, "warmup", time.Minute, "load before the start sample, so that start-up growth is not counted")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "quiet time before each of the start and end samples")
	flag.DurationVar(&o.every, "sample", 15*time.Second, "interval of the samples under load (progress lines, and the RSS trend)")
	flag.IntVar(&o.concurrency, "concurrency", 4, "HTTP operations in flight")
	flag.DurationVar(&o.think, "think", 50*time.Millisecond, "pause of each worker between operations (a second after a failure)")
	flag.DurationVar(&o.opTimeout, "op-timeout", 60*time.Second, "bound on one HTTP operation (twice this on a share or fetch)")
	flag.DurationVar(&o.shareEvery, "share-every", 30*time.Second, "pause between one share-and-fetch and the next; 0 for none")
	flag.Int64Var(&o.shareSize, "share-size", 2<<20, "bytes of each shared file")
	out := flag.String("out", "", "also write the report, with every sample, as JSON here")
	flag.Parse()
	o.logf = logTo(os.Stderr)
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "veilsoak: error:", err)
		return 2
	}
	if o.warmup >= o.duration {
		return fail(fmt.Errorf("-warmup %s leaves nothing of -duration %s to measure", o.warmup, o.duration))
	}
	if o.concurrency < 1 {
		return fail(fmt.Errorf("-concurrency %d: want at least 1", o.concurrency))
	}
	if o.dir == "" {
		d, err := os.MkdirTemp("", "veilsoak-")
		if err != nil {
			return fail(err)
		}
		o.dir = d
	} else if err := os.MkdirAll(o.dir, 0o700); err != nil {
		// Shares write their files here, even with -attach.
		return fail(err)
	}
	o.logf("working in %s", o.dir)

	// Ctrl-C or SIGTERM ends the run; a testnet started here stops.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var s *soak
	if *attach != "" {
		m, err := readManifest(*attach)
		if err != nil {
			return fail(fmt.Errorf("attach to %s: %w", *attach, err))
		}
		s = newSoak(o, m)
	} else {
		if _, err := os.Stat(o.veil); err != nil {
			return fail(fmt.Errorf("%w (run `make build` first, or give -veil)", err))
		}
		o.logf("starting %s testnet --dir %s", o.veil, filepath.Join(o.dir, "testnet"))
		c, m, err := startTestnet(ctx, o.veil, filepath.Join(o.dir, "testnet"))
		if err != nil {
			return fail(err)
		}
		defer c.stop()
		s = newSoak(o, m)
	}
	for _, p := range s.procs {
		o.logf("watching %s (pid %d%s)", p.Name, p.PID, map[bool]string{true: ", /metrics at " + p.Metrics}[p.Metrics != ""])
	}
	r, err := s.run(ctx)
	if err != nil {
		return fail(err)
	}
	fmt.Println()
	r.write(os.Stdout)
	if *out != "" {
		b, err := json.MarshalIndent(r, "", " ")
		if err == nil {
			err = os.WriteFile(*out, append(b, '\n'), 0o644)
		}
		if err != nil {
			return fail(err)
		}
		o.logf("report and samples in %s", *out)
	}
	if !r.Pass {
		return 1
	}
	return 0
}
