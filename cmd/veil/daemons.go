package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"veil/conf"
	"veil/conf/durable"
	"veil/directory"
	"veil/directory/seed"
	"veil/onion"
	"veil/relay"
	"veil/relay/client"
	"veil/relay/path"
)

// configFlag parses `--config FILE` for a daemon subcommand.
func configFlag(name string, args []string, stderr io.Writer) (string, error) {
	role := name
	if name == "proxy" {
		role = "client"
	}
	fs := newFlags(name, stderr)
	path := fs.String("config", "", "config file (make one with: veil config init --role "+role+")")
	if err := parseFlags(fs, args); err != nil {
		return "", err
	}
	if *path == "" {
		return "", usageErr(fmt.Sprintf("veil config init --role %s > %s.toml, then veil %s --config %s.toml", role, role, name, role),
			"%s: --config FILE is required", name)
	}
	return *path, nil
}

func runSeed(args []string, stdout, stderr io.Writer) (err error) {
	file, err := configFlag("seed", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := conf.LoadSeed(file)
	if err != nil {
		return err
	}
	lock, err := lockDataDir("seed", cfg.DataDir, "lock")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	log, levels := newDaemonLogger(stderr, cfg.SlogLevel(), cfg.LogFormat)
	defer logExit(log, cfg.LogFormat, &err)
	s, err := seed.New(cfg, log)
	if err != nil {
		return err
	}
	sel, err := path.NewSelector(path.Options{Logger: log})
	if err != nil {
		return err
	}
	// The seed times relays over circuits of its own (directory/SPEC.md
	// §5.6); the client only ever builds one-hop circuits.
	measurer := client.New(client.Options{Paths: sel, Logger: log})
	defer measurer.Close()
	ctx, stop := signalContext()
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	cur := cfg
	onHangup(ctx, &wg, func() {
		next, err := conf.LoadSeed(file)
		if err != nil {
			logReloadRefused(log, err)
			return
		}
		applied, restart := logLevelOnly(levels, cur, next, (*conf.Seed).SlogLevel)
		c := *cur
		c.LogLevel = next.LogLevel
		cur = &c
		reported(log, applied, restart)
	})
	wg.Go(func() {
		s.MeasureBandwidth(ctx, func(ctx context.Context, e directory.Entry) (float64, error) {
			return measurer.Measure(ctx, e, measureCells)
		})
	})
	defer stop() // before the wait: the measurements end with the seed
	return s.Run(ctx)
}

// measureCells is what a seed sends through a relay to time it: 1 MiB,
// a second at 1 MB/s and a few milliseconds on a fast relay.
const measureCells = 256

func runRelay(args []string, stdout, stderr io.Writer) (err error) {
	path, err := configFlag("relay", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := conf.LoadRelay(path)
	if err != nil {
		return err
	}
	lock, err := lockDataDir("relay", cfg.DataDir, "lock")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	log, levels := newDaemonLogger(stderr, cfg.SlogLevel(), cfg.LogFormat)
	defer logExit(log, cfg.LogFormat, &err)
	r, err := relay.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop() // before the wait: the signal goroutines end with the relay
	onStopSignals(ctx, &wg, r.Drain, stop)
	onHangup(ctx, &wg, func() {
		next, err := conf.LoadRelay(path)
		if err != nil {
			logReloadRefused(log, err)
			return
		}
		levels.Set(next.SlogLevel())
		applied, restart := r.Reload(next)
		reported(log, applied, restart)
	})
	return r.Run(ctx)
}

// onStopSignals calls drain at the first SIGINT or SIGTERM and stop at the
// second, from a goroutine that wg tracks until ctx ends: a relay drains
// for shutdown_wait on the first (relay.Relay.Drain), and an operator who
// will not wait ends it at once with the second, as with Tor.
func onStopSignals(ctx context.Context, wg *sync.WaitGroup, drain, stop func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	wg.Go(func() {
		defer signal.Stop(ch)
		for _, act := range []func(){drain, stop} {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				act()
			}
		}
	})
}

// signalContext ends on SIGINT or SIGTERM, so a seed or a proxy shuts down
// gracefully: a seed leaves the gossip cluster and finishes the directory
// requests in flight (a second or two, dirserve's shutdown grace). It has no
// drain of its own: it carries no circuit or stream, and the consensus it
// signed stays valid at every client and cache for hours.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func runProxy(args []string, stdout, stderr io.Writer) (err error) {
	path, err := configFlag("proxy", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := conf.LoadClient(path)
	if err != nil {
		return err
	}
	// share, fetch and repair use the same data_dir beside a proxy; only a
	// second proxy would fight it for the guard file.
	lock, err := lockDataDir("proxy", cfg.DataDir, "proxy.lock")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	log, levels := newDaemonLogger(stderr, cfg.SlogLevel(), cfg.LogFormat)
	defer logExit(log, cfg.LogFormat, &err)
	p, err := client.NewProxy(cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop() // before the wait: the reload goroutine ends with the proxy
	cur := cfg
	onHangup(ctx, &wg, func() {
		next, err := conf.LoadClient(path)
		if err != nil {
			logReloadRefused(log, err)
			return
		}
		applied, restart := logLevelOnly(levels, cur, next, (*conf.Client).SlogLevel)
		c := *cur
		c.LogLevel = next.LogLevel
		cur = &c
		reported(log, applied, restart)
	})
	return p.Run(ctx)
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	fmt.Fprintf(stdout, "veil %s (onion protocol %d)\n", version, onion.ProtocolVersion)
	return nil
}

// lockDataDir holds dir for this process (durable.LockDir), with a message
// that says what to do when another process has it.
func lockDataDir(role, dir, name string) (*durable.Lock, error) {
	lock, err := durable.LockDir(dir, name)
	if errors.Is(err, durable.ErrInUse) {
		return nil, &cliError{msg: role, err: err,
			hint: "each " + role + " needs a data_dir of its own; stop the other process first if it is the same " + role}
	}
	return lock, err
}
