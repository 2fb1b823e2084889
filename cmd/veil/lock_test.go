package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSecondProcessOnDataDirRefused (issue 16 item 4): a relay, seed or
// proxy whose data_dir another running process holds refuses to start,
// saying so, instead of joining the network under the same node ID; and
// a second `veil testnet --dir` refuses the first's directory.
func TestSecondProcessOnDataDirRefused(t *testing.T) {
	n := newLocalNet(t)
	first := map[string][]string{
		"seed":  {"seed", "--config", n.seedCfg},
		"relay": {"relay", "--config", n.relayConfig("alpha", false)},
	}
	for role, args := range first {
		p := startProc(t, args...)
		// The first holds its data_dir once it logs that it runs.
		deadline := time.Now().Add(hangTimeout)
		for !strings.Contains(p.stderr.String(), "running") && !strings.Contains(p.stderr.String(), "consensus") {
			if time.Now().After(deadline) {
				t.Fatalf("the first %s never started:\n%s", role, p.stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
		out, err := exec.CommandContext(ctx, veilBinary(t), args...).CombinedOutput()
		cancel()
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), "in use by another process") || !strings.Contains(string(out), "pid") {
			t.Fatalf("a second %s on the same data_dir: exit %d, output:\n%s", role, code, out)
		}
	}

	// The first testnet holds its directory once its manifest is there.
	dir := t.TempDir()
	tn := startProc(t, "testnet", "--dir", dir, "--relays", "3")
	waitManifest(t, tn, dir)
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, veilBinary(t), "testnet", "--dir", dir, "--relays", "3").CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "in use by another process") {
		t.Fatalf("a second testnet on the same --dir: exit %d, output:\n%s", code, out)
	}
}

// exitCode is a finished command's exit status (0 when err is nil).
func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
