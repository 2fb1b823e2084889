package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"veil/directory/dirclient"
	"veil/onion/keys"
)

// These tests run the real binary: a seed and relays as separate processes
// on 127.0.0.1, killed and restarted the way operators and crashes do.

var (
	buildOnce sync.Once
	veilBin   string
	buildErr  error
)

func veilBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "veil-bin-")
		if err != nil {
			buildErr = err
			return
		}
		veilBin = filepath.Join(dir, "veil")
		out, err := exec.Command("go", "build", "-o", veilBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return veilBin
}

// handedOut is every address freePort has returned: the kernel may give a
// port just closed to the next listener, and two nodes of one test must
// not be told the same one.
var handedOut sync.Map

// freePort returns a loopback address free now and not handed out before
// in this test binary. It is closed again, so a process started later
// can bind it; another program could take it meanwhile, which is rare.
func freePort(t *testing.T) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, dup := handedOut.LoadOrStore(addr, true); !dup {
			return addr
		}
	}
}

// proc is one veil process.
type proc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{}
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(veilBinary(t), args...), stderr: new(bytes.Buffer), done: make(chan struct{})}
	p.cmd.Stderr = &lockedWriter{w: p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s:\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("process did not exit after %v", sig)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// localNet writes configs from `veil config init` output, changed as a
// testnet would change them.
type localNet struct {
	t       *testing.T
	dir     string
	seedCfg string
	seedID  keys.NodeID
	dirAddr string
	gossip  string
	client  string
}

func newLocalNet(t *testing.T) *localNet {
	n := &localNet{t: t, dir: t.TempDir(), dirAddr: freePort(t), gossip: freePort(t)}
	data := filepath.Join(n.dir, "seed")
	store, err := keys.Open(data, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n.seedID = store.Identity().ID()
	n.seedCfg = n.config("seed", map[string]string{
		"data_dir": quote(data), "gossip_addr": quote(n.gossip), "dir_addr": quote(n.dirAddr),
		"consensus_interval": `"1s"`, "guard_min_uptime": `"0s"`, "max_relays_per_slash16": "0",
		"rate_limit_per_minute": "0", "gossip_timing": `"local"`,
	})
	n.client = n.config("client", map[string]string{"data_dir": quote(filepath.Join(n.dir, "client"))})
	f, _ := os.OpenFile(n.client, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(f, "\n[[seed]]\nname = \"seed0\"\ndir_url = \"http://%s\"\nidentity = \"%s\"\n", n.dirAddr, n.seedID)
	f.Close()
	return n
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

// config writes `veil config init --role role` with some keys replaced.
func (n *localNet) config(role string, set map[string]string) string {
	n.t.Helper()
	_, out, _ := runCLI(n.t, "config", "init", "--role", role)
	var lines []string
	skipping := false
	for _, line := range strings.Split(out, "\n") {
		if skipping {
			// The rest of a multi-line array being replaced.
			skipping = strings.TrimSpace(line) != "]"
			continue
		}
		if k, v, ok := strings.Cut(line, " = "); ok && set[k] != "" {
			line = k + " = " + set[k]
			skipping = strings.HasPrefix(v, "[") && !strings.HasSuffix(v, "]")
		}
		lines = append(lines, line)
	}
	path := filepath.Join(n.dir, fmt.Sprintf("%s-%d.toml", role, len(set)))
	if role == "relay" {
		path = filepath.Join(n.dir, strings.Trim(set["nickname"], `"`)+".toml")
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		n.t.Fatal(err)
	}
	return path
}

func (n *localNet) relayConfig(name string, exit bool) string {
	set := map[string]string{
		"data_dir": quote(filepath.Join(n.dir, name)), "nickname": quote(name),
		"or_addr": `"127.0.0.1:0"`, "gossip_addr": `"127.0.0.1:0"`, "seeds": fmt.Sprintf("[%q]", n.gossip),
		"gossip_timing": `"local"`,
	}
	if exit {
		set["exit"] = "true"
		set["exit_policy"] = `["accept 127.0.0.1:*", "reject *:*"]`
	}
	return n.config("relay", set)
}

// view fetches the seed's consensus through the client library.
func (n *localNet) relays(t *testing.T) (map[string]bool, error) {
	c, err := dirclient.New(dirclient.Options{Seeds: []dirclient.Seed{{Name: "seed0", URL: "http://" + n.dirAddr, ID: n.seedID}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := c.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	got := map[string]bool{}
	for _, e := range v.Relays {
		got[e.Descriptor.Nickname] = true
	}
	return got, nil
}

// waitRelays polls until the consensus lists exactly the named relays and
// returns how long that took.
func (n *localNet) waitRelays(t *testing.T, within time.Duration, names ...string) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < within {
		got, err := n.relays(t)
		if err == nil && len(got) == len(names) {
			all := true
			for _, name := range names {
				all = all && got[name]
			}
			if all {
				return time.Since(start)
			}
		}
		last = fmt.Sprint(got, err)
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("consensus never listed exactly %v; last: %s", names, last)
	return 0
}

// TestChurn: relays started from `veil config init` output join; one
// killed with SIGKILL leaves within the suspicion time plus an interval;
// one stopped with SIGTERM leaves at once; the killed one comes back with
// its keys; a restarted seed serves at once and loses nothing.
func TestChurn(t *testing.T) {
	n := newLocalNet(t)
	seed := startProc(t, "seed", "--config", n.seedCfg)
	names := []string{"alpha", "bravo", "charlie", "delta"}
	procs := map[string]*proc{}
	for i, name := range names {
		procs[name] = startProc(t, "relay", "--config", n.relayConfig(name, i == 0))
	}
	took := n.waitRelays(t, 20*time.Second, names...)
	t.Logf("4 relays in the consensus after %v", took)

	// veil status, as a user runs it.
	relays := statusRelays(t, n.client)
	if len(relays) != 4 {
		t.Fatalf("veil status --json lists %d relays, want 4", len(relays))
	}
	for _, r := range relays {
		if !strings.HasPrefix(r.ORAddr, "127.0.0.1:") || len(r.Flags) == 0 {
			t.Fatalf("status relay %+v", r)
		}
	}

	// SIGKILL: no goodbye; gossip's suspicion (about a second with the
	// local profile) plus one consensus interval.
	procs["delta"].signal(t, syscall.SIGKILL)
	took = n.waitRelays(t, 10*time.Second, "alpha", "bravo", "charlie")
	t.Logf("killed relay gone after %v", took)

	// SIGTERM: the relay leaves the cluster and the seed re-signs at once.
	procs["charlie"].signal(t, syscall.SIGTERM)
	took = n.waitRelays(t, 5*time.Second, "alpha", "bravo")
	t.Logf("stopped relay gone after %v", took)

	// The killed relay comes back with the same keys and is admitted.
	procs["delta"] = startProc(t, "relay", "--config", filepath.Join(n.dir, "delta.toml"))
	n.waitRelays(t, 20*time.Second, "alpha", "bravo", "delta")

	// A restarted seed serves its saved consensus at once, and the relays
	// rejoin it.
	seed.signal(t, syscall.SIGTERM)
	seed = startProc(t, "seed", "--config", n.seedCfg)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got, err := n.relays(t); err == nil && len(got) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("restarted seed did not serve its saved consensus")
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.waitRelays(t, 30*time.Second, "alpha", "bravo", "delta")
	_ = seed
}

// TestTestnet: `veil testnet` starts seeds and relays as processes, writes
// testnet.json once the consensus lists every relay, and on SIGINT stops
// every process it started.
func TestTestnet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tn")
	tn := startProc(t, "testnet", "--dir", dir, "--relays", "4", "--seeds", "2")
	manifest := filepath.Join(dir, "testnet.json")
	deadline := time.Now().Add(30 * time.Second)
	var raw []byte
	for {
		var err error
		if raw, err = os.ReadFile(manifest); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("testnet.json never appeared")
		}
		time.Sleep(100 * time.Millisecond)
	}
	var m struct {
		Socks        string `json:"socks"`
		ClientConfig string `json:"client_config"`
		Seeds        []struct {
			Name   string `json:"name"`
			PID    int    `json:"pid"`
			Config string `json:"config"`
		} `json:"seeds"`
		Relays []struct {
			Name   string `json:"name"`
			PID    int    `json:"pid"`
			Config string `json:"config"`
			ORAddr string `json:"or_addr"`
		} `json:"relays"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Seeds) != 2 || len(m.Relays) != 4 ||
		!strings.HasPrefix(m.Socks, "127.0.0.1:") || m.ClientConfig == "" {
		t.Fatalf("testnet.json: %v\n%s", err, raw)
	}
	var pids []int
	for _, s := range m.Seeds {
		pids = append(pids, s.PID)
	}
	for _, r := range m.Relays {
		pids = append(pids, r.PID)
		if !strings.HasPrefix(r.ORAddr, "127.0.0.1:") {
			t.Fatalf("relay %s or_addr %q", r.Name, r.ORAddr)
		}
	}
	out, err := exec.Command(veilBinary(t), "status", "--config", m.ClientConfig).Output()
	if err != nil || !strings.Contains(string(out), "relays: 4") {
		t.Fatalf("status: %v\n%s", err, out)
	}

	tn.signal(t, syscall.SIGINT)
	for _, pid := range pids {
		// Signal 0 probes for existence; a stopped process is gone (its
		// parent, the testnet, reaped it).
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("process %d still running after the testnet stopped", pid)
		}
	}
	if _, err := os.Stat(manifest); err == nil {
		t.Error("testnet.json left behind after stop")
	}
}
