package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"veil/relay/testnet"
)

// manifestWait bounds the wait for a new testnet's testnet.json.
const manifestWait = 90 * time.Second

// child is the `veil testnet` process the soak started.
type child struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once it has been waited for
}

// startTestnet starts `veil testnet --dir dir` and waits for its
// manifest. The process's output goes to dir/../testnet.out.
func startTestnet(ctx context.Context, veil, dir string) (*child, testnet.Manifest, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, testnet.Manifest{}, err
	}
	out, err := os.Create(filepath.Join(filepath.Dir(dir), "testnet.out"))
	if err != nil {
		return nil, testnet.Manifest{}, err
	}
	defer out.Close()
	cmd := exec.Command(veil, "testnet", "--dir", dir)
	cmd.Stdout, cmd.Stderr = out, out
	// Should the soak die, the testnet goes too (and it takes its own
	// children with it).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, testnet.Manifest{}, err
	}
	c := &child{cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(c.exited)
	}()
	deadline := time.After(manifestWait)
	for {
		m, err := readManifest(dir)
		if err == nil {
			return c, m, nil
		}
		select {
		case <-c.exited:
			return nil, m, fmt.Errorf("veil testnet exited: %v (output in %s)", cmd.ProcessState, out.Name())
		case <-deadline:
			c.stop()
			return nil, m, fmt.Errorf("no %s after %v: %v (output in %s)", testnet.ManifestName, manifestWait, err, out.Name())
		case <-ctx.Done():
			c.stop()
			return nil, m, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stop asks the testnet to stop its processes and kills it if it
// has not within a grace period.
func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
}

// readManifest reads dir/testnet.json; a half-written file is an error
// to retry, like a missing one.
func readManifest(dir string) (testnet.Manifest, error) {
	var m testnet.Manifest
	b, err := os.ReadFile(filepath.Join(dir, testnet.ManifestName))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, err
	}
	if m.Socks == "" || m.Web == "" || m.Proxy.PID == 0 {
		return m, errors.New("manifest lacks the proxy")
	}
	return m, nil
}

// procsOf lists every process the soak watches: seeds, relays, the proxy
// and the `veil testnet` process itself, the proxy's parent, which runs
// the web server every fetch goes to.
func procsOf(m testnet.Manifest) []Proc {
	var ps []Proc
	for _, p := range m.Seeds {
		ps = append(ps, Proc{Name: p.Name, PID: p.PID, Metrics: p.Metrics})
	}
	for _, p := range m.Relays {
		ps = append(ps, Proc{Name: p.Name, PID: p.PID, Metrics: p.Metrics})
	}
	ps = append(ps, Proc{Name: "proxy", PID: m.Proxy.PID, Metrics: m.Proxy.Metrics})
	if ppid, err := parentPID(m.Proxy.PID); err == nil && ppid > 1 {
		ps = append(ps, Proc{Name: "testnet+web", PID: ppid})
	}
	return ps
}
