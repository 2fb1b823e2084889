// Package testnet runs a whole veil network on this machine: it writes
// configs for seeds, relays and a client into a directory, starts every
// seed and relay as its own `veil` process on 127.0.0.1, waits until the
// network is usable, records it in DIR/testnet.json, and stops every
// process it started when its context ends (DESIGN.md, `veil testnet`).
package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"veil/conf"
	"veil/conf/durable"
	"veil/conf/exitpolicy"
	"veil/directory/dirclient"
	"veil/onion/keys"
)

const (
	// DefaultRelays gives room for three-hop circuits with distinct exits
	// and for erasure-coded shares that survive losing two relays.
	DefaultRelays = 6
	DefaultSeeds  = 1
	// MaxNodes bounds what one machine is asked to run.
	MaxNodes = 64

	// consensusInterval makes a testnet react within seconds.
	consensusInterval = 2 * time.Second
	// stopGrace is how long processes get to leave gracefully before they
	// are killed.
	stopGrace = 5 * time.Second
	// ManifestName is the file that describes a running testnet.
	ManifestName = "testnet.json"
)

// Options say what network to run.
type Options struct {
	Dir    string
	Relays int
	Seeds  int
	// Binary is the veil executable to start; "" means this one.
	Binary string
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for every relay to be listed.
	ReadyTimeout time.Duration
}

// Proc describes one started process in the manifest.
type Proc struct {
	Name    string `json:"name"`
	PID     int    `json:"pid"`
	Config  string `json:"config"`
	Log     string `json:"log"`
	ORAddr  string `json:"or_addr,omitempty"`
	DirAddr string `json:"dir_addr,omitempty"`
	ID      string `json:"id,omitempty"`
	// Metrics is the host:port of a seed's, a relay's or the proxy's
	// Prometheus /metrics.
	Metrics string `json:"metrics,omitempty"`
}

// Manifest is DIR/testnet.json.
type Manifest struct {
	Socks        string `json:"socks"`
	ClientConfig string `json:"client_config"`
	// Web is a web server on 127.0.0.1 that the network can reach.
	Web    string `json:"web"`
	Proxy  Proc   `json:"proxy"`
	Seeds  []Proc `json:"seeds"`
	Relays []Proc `json:"relays"`
}

// Network is a started testnet.
type Network struct {
	opts     Options
	log      *slog.Logger
	Manifest Manifest
	client   *conf.Client

	target *target

	mu    sync.Mutex // guards procs
	procs []*process
}

type process struct {
	name string
	role string // the veil subcommand: seed, relay or proxy
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

// errPortTaken: a process could not bind a port the testnet picked for
// it. Ports are picked free and named in the configs before any process
// starts, so another program (another testnet, a test binding port 0) can
// take one in between; Start then tries again with fresh ports.
var errPortTaken = errors.New("testnet: a port picked for a process was taken before it started")

// startAttempts bounds the fresh starts after errPortTaken.
const startAttempts = 3

// Start writes the configs, starts the processes and waits until the
// consensus lists every relay. On error everything started is stopped. A
// port taken by another program between being picked and bound costs a
// fresh start with new ports, up to startAttempts in all.
func Start(ctx context.Context, o Options) (*Network, error) {
	for attempt := 1; ; attempt++ {
		n, err := start(ctx, o)
		if err == nil || attempt == startAttempts || !errors.Is(err, errPortTaken) || ctx.Err() != nil {
			return n, err
		}
		if o.Logger != nil {
			o.Logger.Info("testnet: a port was taken before its process bound it; starting again with new ports", "attempt", attempt+1, "err", err)
		}
	}
}

func start(ctx context.Context, o Options) (*Network, error) {
	if o.Relays == 0 {
		o.Relays = DefaultRelays
	}
	if o.Seeds == 0 {
		o.Seeds = DefaultSeeds
	}
	if o.Relays < 1 || o.Seeds < 1 || o.Relays+o.Seeds > MaxNodes {
		return nil, fmt.Errorf("testnet: %d relays and %d seeds: want at least one of each and at most %d in all", o.Relays, o.Seeds, MaxNodes)
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("testnet: find the veil binary: %w", err)
		}
		o.Binary = exe
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	o.Dir = dir
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	n := &Network{opts: o, log: o.Logger}
	if err := n.writeConfigs(); err != nil {
		return nil, err
	}
	if n.target, err = startTarget(); err != nil {
		return nil, err
	}
	n.Manifest.Web = n.target.url()
	if err := n.startAll(); err != nil {
		n.Stop()
		return nil, err
	}
	if err := n.waitReady(ctx); err != nil {
		n.Stop()
		return nil, err
	}
	if err := n.startProxy(ctx); err != nil {
		n.Stop()
		return nil, err
	}
	if err := n.writeManifest(); err != nil {
		n.Stop()
		return nil, err
	}
	return n, nil
}

// portPicker hands out loopback addresses whose ports are free. Every
// address is fixed before any process starts, because configs and the
// manifest name them; the listeners are held until all are picked, so no
// two picks share a port.
type portPicker struct{ held []net.Listener }

func (pp *portPicker) addr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("testnet: find a free port: %w", err)
	}
	pp.held = append(pp.held, ln)
	return ln.Addr().String(), nil
}

func (pp *portPicker) release() {
	for _, ln := range pp.held {
		ln.Close()
	}
}

func (n *Network) path(parts ...string) string {
	return filepath.Join(append([]string{n.opts.Dir}, parts...)...)
}

// writeConfigs writes one config per seed and relay and the client's.
func (n *Network) writeConfigs() error {
	var pp portPicker
	defer pp.release()
	freeAddr := pp.addr
	var gossips []string
	for i := 0; i < n.opts.Seeds; i++ {
		a, err := freeAddr()
		if err != nil {
			return err
		}
		gossips = append(gossips, a)
	}
	client := conf.DefaultClient()
	client.DataDir = n.path("client")
	socks, err := freeAddr()
	if err != nil {
		return err
	}
	client.SOCKSAddr = socks
	// Metrics on loopback let a soak watch the proxy for leaks too. They
	// go in the proxy's own copy of the config (below), so that client.toml,
	// which share, fetch and tests' second proxies start from, binds none.
	proxyMetrics, err := freeAddr()
	if err != nil {
		return err
	}
	client.LocalTestnet = true // every relay is on 127.0.0.0/16
	// Follow the seeds' short interval, so a restarted testnet is used
	// with its new addresses at once.
	client.ConsensusRefresh = conf.Duration(time.Second)
	for i := 0; i < n.opts.Seeds; i++ {
		name := fmt.Sprintf("seed%d", i+1)
		cfg := conf.DefaultSeed()
		cfg.DataDir = n.path(name)
		cfg.Nickname = name
		cfg.GossipAddr = gossips[i]
		cfg.PeerSeeds = append(append([]string{}, gossips[:i]...), gossips[i+1:]...)
		if cfg.DirAddr, err = freeAddr(); err != nil {
			return err
		}
		cfg.ConsensusInterval = conf.Duration(consensusInterval)
		cfg.GuardMinUptime = 0      // every relay is a guard at once
		cfg.MaxRelaysPerSlash16 = 0 // they all share 127.0.0.0/16
		cfg.RateLimitPerMinute = 0  // the local client polls freely
		cfg.GossipTiming = conf.GossipLocal
		// Metrics on loopback let a soak watch every seed for leaks.
		if cfg.MetricsAddr, err = freeAddr(); err != nil {
			return err
		}
		// The seed's keys are made now so the client can pin its ID.
		store, err := keys.Open(cfg.DataDir, keys.Options{})
		if err != nil {
			return err
		}
		id := store.Identity().ID()
		config := n.path(name + ".toml")
		if err := conf.Write(config, &cfg); err != nil {
			return err
		}
		n.Manifest.Seeds = append(n.Manifest.Seeds, Proc{Name: name, Config: config, DirAddr: cfg.DirAddr, ID: id.String(),
			Metrics: cfg.MetricsAddr, Log: n.path("logs", name+".log")})
		client.Seeds = append(client.Seeds, conf.SeedPin{Name: name, DirURL: "http://" + cfg.DirAddr, Identity: id.String()})
	}
	for i := 0; i < n.opts.Relays; i++ {
		name := fmt.Sprintf("relay%d", i+1)
		cfg := conf.DefaultRelay()
		cfg.DataDir = n.path(name)
		cfg.Nickname = name
		if cfg.ORAddr, err = freeAddr(); err != nil {
			return err
		}
		if cfg.GossipAddr, err = freeAddr(); err != nil {
			return err
		}
		// Metrics on loopback let a soak watch every relay for leaks.
		if cfg.MetricsAddr, err = freeAddr(); err != nil {
			return err
		}
		cfg.Seeds = gossips
		cfg.GossipTiming = conf.GossipLocal
		// A drain that fits in the stopGrace a testnet gives its
		// processes, so Ctrl-C on `make run` is not a 30-second wait.
		cfg.ShutdownWait = conf.Duration(stopGrace / 2)
		// Every relay is a directory cache of the seeds the client pins
		// (directory/SPEC.md §8), so clients fetch through their guard;
		// it follows the seeds' short interval as the client does.
		cfg.DirCacheSeeds = client.Seeds
		cfg.DirCacheRefresh = client.ConsensusRefresh
		// Every other relay exits, to loopback only (G6: testnets opt in
		// to loopback and nothing else); all but the first store shards.
		cfg.Exit = i%2 == 1
		cfg.ExitPolicy = exitpolicy.LoopbackOnly().Lines()
		cfg.Storage = i > 0
		cfg.StorageQuota = 1 * conf.GiB
		config := n.path(name + ".toml")
		if err := conf.Write(config, &cfg); err != nil {
			return err
		}
		n.Manifest.Relays = append(n.Manifest.Relays, Proc{Name: name, Config: config, ORAddr: cfg.ORAddr,
			Metrics: cfg.MetricsAddr, Log: n.path("logs", name+".log")})
	}
	n.Manifest.Socks = socks
	n.Manifest.ClientConfig = n.path("client.toml")
	n.Manifest.Proxy = Proc{Name: "proxy", Config: n.path("proxy.toml"), Metrics: proxyMetrics,
		Log: n.path("logs", "proxy.log")}
	n.client = &client
	if err := conf.Write(n.Manifest.ClientConfig, &client); err != nil {
		return err
	}
	proxy := client
	proxy.MetricsAddr = proxyMetrics
	return conf.Write(n.Manifest.Proxy.Config, &proxy)
}

// startAll starts the seeds, then the relays.
func (n *Network) startAll() error {
	for i := range n.Manifest.Seeds {
		p := &n.Manifest.Seeds[i]
		pid, err := n.start(p.Name, p.Log, "seed", "--config", p.Config)
		if err != nil {
			return err
		}
		p.PID = pid
	}
	for i := range n.Manifest.Relays {
		p := &n.Manifest.Relays[i]
		pid, err := n.start(p.Name, p.Log, "relay", "--config", p.Config)
		if err != nil {
			return err
		}
		p.PID = pid
	}
	return nil
}

func (n *Network) start(name, logPath string, args ...string) (int, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("testnet: %w", err)
	}
	cmd := exec.Command(n.opts.Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = childEnv(os.Environ(), runtime.GOMAXPROCS(0), n.processes())
	// If this process dies without stopping its children, the kernel
	// kills them: a testnet never leaves orphans behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := startWithTimerSlack(cmd, childTimerSlack); err != nil {
		logf.Close()
		return 0, fmt.Errorf("testnet: start %s: %w", name, err)
	}
	p := &process{name: name, role: args[0], cmd: cmd, log: logf, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	n.mu.Lock()
	n.procs = append(n.procs, p)
	n.mu.Unlock()
	n.log.Debug("started", "name", name, "pid", cmd.Process.Pid)
	return cmd.Process.Pid, nil
}

// childTimerSlack is how late the kernel may end a testnet process's
// timed sleeps. Go's monitor thread (sysmon) naps 20 µs at a time while
// the process is busy; with the kernel's default 50 µs slack that woke
// every veil process thousands of times a second, each time a context
// switch on a machine the whole network shares, and it handed a process's
// only P to a fresh thread whenever a socket write took longer than a nap.
// With 4 ms the monitor wakes a few hundred times a second: a download
// through a 2-core testnet took about a tenth less CPU per MB (paired
// runs in the README). veil keeps no timer on its data path, and its
// timeouts are seconds, so their being up to 4 ms late changes nothing.
const childTimerSlack = 4 * time.Millisecond

// processes counts the veil processes the network runs.
func (n *Network) processes() int {
	return len(n.Manifest.Seeds) + len(n.Manifest.Relays) + 1
}

// childEnv is the environment of a testnet process: this one's, with
// GOMAXPROCS set to the process's share of cpus (this process's own
// GOMAXPROCS, which heeds CPU affinity and cgroup limits) unless the user
// chose it. Go sizes each runtime as if it owned every core, so
// procs processes on fewer cores each keep idle threads spinning for work
// and wake each other across cores. On the 2-core machine of the README
// a download through the testnet took about a fifth less CPU per MB and
// moved about a fifth more with one thread per process (paired runs of
// cmd/veilbench). A relay on a machine of its own keeps every core.
func childEnv(env []string, cpus, procs int) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			return env
		}
	}
	share := max(1, cpus/max(1, procs))
	return append(slices.Clip(env), "GOMAXPROCS="+strconv.Itoa(share))
}

// waitReady polls the seeds until a majority-backed consensus lists every
// relay.
func (n *Network) waitReady(ctx context.Context) error {
	seeds, err := dirclient.SeedsFromConfig(n.client.Seeds)
	if err != nil {
		return err
	}
	dc, err := dirclient.New(dirclient.Options{Seeds: seeds})
	if err != nil {
		return err
	}
	defer dc.Close()
	// A seed restarted in an old testnet directory serves its saved
	// consensus at once, with the old addresses: wait for one signed now.
	started := time.Now().Truncate(time.Second)
	deadline := time.Now().Add(n.opts.ReadyTimeout)
	var last error
	for time.Now().Before(deadline) {
		if err := n.exited(); err != nil {
			return err
		}
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, err := dc.Fetch(fctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			last = err
		case v.ValidAfter.Before(started):
			last = errors.New("only the consensus of an earlier run")
		case len(v.Relays) == n.opts.Relays:
			return nil
		default:
			last = fmt.Errorf("%d of %d relays listed", len(v.Relays), n.opts.Relays)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%w after %v: %v (logs in %s)", ErrNotReady, n.opts.ReadyTimeout, last, n.path("logs"))
}

// startProxy starts `veil proxy` and waits until a request crosses the
// network through it.
func (n *Network) startProxy(ctx context.Context) error {
	p := &n.Manifest.Proxy
	pid, err := n.start(p.Name, p.Log, "proxy", "--config", p.Config)
	if err != nil {
		return err
	}
	p.PID = pid
	deadline := time.Now().Add(n.opts.ReadyTimeout)
	var last error
	for time.Now().Before(deadline) {
		if err := n.exited(); err != nil {
			return err
		}
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = fetchGreeting(fctx, n.Manifest.Socks, n.target)
		cancel()
		if last == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%w: no request crossed the network: %v (logs in %s)", ErrNotReady, last, n.path("logs"))
}

// exited reports a process that ended before it should have.
func (n *Network) exited() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.procs {
		select {
		case <-p.done:
			err := fmt.Errorf("testnet: %s exited: %v (log: %s)", p.name, p.cmd.ProcessState, p.log.Name())
			if b, rerr := os.ReadFile(p.log.Name()); rerr == nil && bytes.Contains(b, []byte("address already in use")) {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			return err
		default:
		}
	}
	return nil
}

// writeManifest writes DIR/testnet.json atomically: scripts and tests poll
// for it, and must see either no file or a whole one, never a part.
func (n *Network) writeManifest() error {
	return writeManifest(n.path(ManifestName), n.Manifest)
}

func writeManifest(path string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFile(path, append(b, '\n'), 0o600)
}

// Stop asks every process to leave, relays and the proxy first and the
// seeds once those are gone, so that seeds see the relays go and nothing
// still running finds its seed gone (a relay drains for its shutdown_wait,
// and a directory cache that outlived the seed warned that it was not
// counted); it kills those still running after a grace period for each
// step, and waits for all.
func (n *Network) Stop() {
	n.mu.Lock()
	procs := append([]*process(nil), n.procs...)
	n.mu.Unlock()
	var seeds, others []*process
	for _, p := range procs {
		if p.role == "seed" {
			seeds = append(seeds, p)
		} else {
			others = append(others, p)
		}
	}
	stopProcs(others)
	stopProcs(seeds)
	if n.target != nil {
		n.target.close()
	}
	os.Remove(n.path(ManifestName))
}

// stopProcs sends each process SIGTERM, kills those still running after
// stopGrace, and waits for all.
func stopProcs(procs []*process) {
	for _, p := range procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	timeout := time.After(stopGrace)
	for _, p := range procs {
		select {
		case <-p.done:
		case <-timeout:
			p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// Wait runs the network until ctx ends, then stops it. A process that
// exits on its own (a relay killed to test churn, say) is reported and the
// rest go on, as a real network would.
func (n *Network) Wait(ctx context.Context) error {
	defer n.Stop()
	n.mu.Lock()
	procs := append([]*process(nil), n.procs...)
	n.mu.Unlock()
	for _, p := range procs {
		go func() {
			select {
			case <-p.done:
				if ctx.Err() == nil {
					n.log.Warn("testnet process exited", "name", p.name, "state", p.cmd.ProcessState.String(), "log", p.log.Name())
				}
			case <-ctx.Done():
			}
		}()
	}
	<-ctx.Done()
	return nil
}

// ErrNotReady is wrapped when the network did not become usable in time.
var ErrNotReady = errors.New("testnet: not ready")
