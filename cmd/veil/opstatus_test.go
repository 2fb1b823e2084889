package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"veil/directory/nodestatus"
)

// operatorStatus runs `veil status --role role --config cfg [extra...]
// --json` and returns its report, with the text form for the log.
func operatorStatus(t *testing.T, role, cfg string, extra ...string) (nodestatus.Report, string) {
	t.Helper()
	args := append([]string{"status", "--role", role, "--config", cfg}, extra...)
	out, err := exec.Command(veilBinary(t), append(args, "--json")...).Output()
	if err != nil {
		t.Fatalf("veil %s --json: %v", strings.Join(args, " "), err)
	}
	var r nodestatus.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("veil status --json: %v\n%s", err, out)
	}
	text, err := exec.Command(veilBinary(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("veil %s: %v\n%s", strings.Join(args, " "), err, text)
	}
	return r, string(text)
}

// TestOperatorStatus (issue 16 item 5): `veil status --role relay` shows
// an operator their relay as the seeds see it (listed, flags, reachable,
// measured weight, per seed and combined) and as it sees itself (uptime,
// traffic, from its /metrics); `--role seed` shows a seed that it answers
// and counts; a relay that stopped shows as not listed
// and not running; with the seed down, the relay's cached consensus is
// shown as cached, never as fresh.
func TestOperatorStatus(t *testing.T) {
	n := newLocalNet(t)
	seed := startProc(t, "seed", "--config", n.seedCfg)
	alpha := n.relayConfig("alpha", true)
	metrics := freePort(t)
	setConfigLine(t, alpha, "metrics_addr", quote(metrics))
	setConfigLine(t, alpha, "dir_cache_refresh", quote("1s"))
	f, err := os.OpenFile(alpha, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[[dir_cache_seed]]\nname = \"seed0\"\ndir_url = \"http://%s\"\nidentity = \"%s\"\n", n.dirAddr, n.seedID)
	f.Close()
	startProc(t, "relay", "--config", alpha)
	bravoCfg := n.relayConfig("bravo", false)
	bravo := startProc(t, "relay", "--config", bravoCfg)
	startProc(t, "relay", "--config", n.relayConfig("charlie", false))
	n.waitRelays(t, "alpha", "bravo", "charlie")

	var r nodestatus.Report
	var text string
	deadline := time.Now().Add(hangTimeout)
	for {
		r, text = operatorStatus(t, "relay", alpha)
		if r.Listed && slices.Contains(r.Flags, "Running") && r.Running != nil && r.Running.BytesIn > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alpha never showed listed, Running and with traffic:\n%s", text)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("alpha, seed up:\n%s", text)
	if r.Source != nodestatus.SourceSeeds || len(r.Seeds) != 1 || !r.Seeds[0].Answered || !r.Seeds[0].Listed || !r.Seeds[0].Reachable {
		t.Errorf("alpha with the seed up: %+v", r)
	}
	if r.Running.Uptime <= 0 {
		t.Errorf("alpha's uptime: %v", r.Running.Uptime)
	}
	for _, want := range []string{"listed: yes", "running: up "} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	if strings.Contains(text, "cached") {
		t.Errorf("with the seed up the report says cached:\n%s", text)
	}

	// The seed, for its operator: it answers, and its document counts.
	r, text = operatorStatus(t, "seed", n.seedCfg)
	t.Logf("the seed:\n%s", text)
	if len(r.Seeds) != 1 || !r.Seeds[0].Answered || !r.Seeds[0].Counted || !strings.Contains(text, "not listed in it") {
		t.Errorf("the seed's own status: %+v", r)
	}

	// A relay that stopped: out of the consensus, not running.
	bravo.signal(t, syscall.SIGTERM)
	n.waitRelays(t, "alpha", "charlie")
	r, text = operatorStatus(t, "relay", bravoCfg, "--pins", n.client)
	t.Logf("bravo, stopped:\n%s", text)
	if r.Listed || r.Running != nil || !strings.Contains(text, "listed: no") || !strings.Contains(text, "running: unknown") {
		t.Errorf("a stopped relay is shown listed or running:\n%s", text)
	}

	// The seed down: alpha's own cache, said to be one.
	if _, err := os.Stat(filepath.Join(n.dir, "alpha", "consensus")); err != nil {
		t.Fatalf("alpha keeps no consensus cache: %v", err)
	}
	seed.signal(t, syscall.SIGTERM)
	r, text = operatorStatus(t, "relay", alpha)
	t.Logf("alpha, seed down:\n%s", text)
	if r.Source != nodestatus.SourceCache || r.Seeds[0].Answered || !strings.HasPrefix(r.State, "cached, no seed answered") {
		t.Errorf("with the seed down the report is not marked cached: %+v", r)
	}
	if strings.Contains(text, "consensus: fresh") || !strings.Contains(text, "no (cached)") {
		t.Errorf("with the seed down the text calls the consensus fresh or the seed answered:\n%s", text)
	}
}
