package main

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRelayLogsJSONAndStopsQuietly (issue 16 item 10): a relay whose
// config says log_format = "json" writes nothing on stderr but JSON
// objects, one a line, each with one level key (memberlist's lines at
// debug included), and a relay stopped with SIGTERM, the normal way to
// stop a daemon, logs no WARN or ERROR on its way out.
func TestRelayLogsJSONAndStopsQuietly(t *testing.T) {
	n := newLocalNet(t)
	seed := startProc(t, "seed", "--config", n.seedCfg)
	// A relay that starts first warns that no seed answers: not this test.
	waitLog(t, seed, `msg="seed running"`)
	cfg := n.relayConfig("alpha", false)
	setConfigLine(t, cfg, "log_format", quote("json"))
	setConfigLine(t, cfg, "log_level", quote("debug"))
	p := startProc(t, "relay", "--config", cfg)
	waitLog(t, p, `"msg":"relay running"`)
	// memberlist logs at debug once the relay has joined the seed.
	waitLog(t, p, `"src":"memberlist"`)
	p.signal(t, syscall.SIGTERM)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}

	out := strings.TrimSuffix(p.stderr.String(), "\n")
	for i, line := range strings.Split(out, "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d is not JSON (%v): %s", i+1, err, line)
		}
		if n := strings.Count(line, `"level":`); n != 1 {
			t.Errorf("line %d has %d level keys: %s", i+1, n, line)
		}
		if lv := rec["level"]; lv == "WARN" || lv == "ERROR" {
			t.Errorf("line %d: a normal shutdown logged %v: %s", i+1, lv, line)
		}
	}

	// The seed (text at debug) stops as quietly. It used to log
	// `level=WARN msg="leaving the cluster" err="gossip: node closed"`:
	// SIGTERM closed its gossip node before it could leave.
	seed.signal(t, syscall.SIGTERM)
	if code := seed.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("seed: exit %d after SIGTERM", code)
	}
	for _, line := range strings.Split(seed.stderr.String(), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("seed: a normal shutdown logged: %s", line)
		}
	}
}

// TestConfigCheckRefusesLogFormat: an unknown log_format is refused at its
// line, like every other key.
func TestConfigCheckRefusesLogFormat(t *testing.T) {
	n := newLocalNet(t)
	cfg := n.relayConfig("bravo", false)
	setConfigLine(t, cfg, "log_format", quote("xml"))
	code, _, errOut := runCLI(t, "config", "check", "--role", "relay", cfg)
	if code != 1 || !strings.Contains(errOut, filepath.Base(cfg)+":") || !strings.Contains(errOut, `unknown log format "xml"`) {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// TestJSONDaemonFailsInJSON (issue 16 item 10): a relay with log_format =
// "json" that cannot start (its or_addr is taken) says why in one JSON
// line of its log, and nothing else reaches stderr: no plain "veil: error:"
// line in the middle of a collector's JSON, and the error told once.
func TestJSONDaemonFailsInJSON(t *testing.T) {
	n := newLocalNet(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := n.relayConfig("charlie", false)
	setConfigLine(t, cfg, "log_format", quote("json"))
	setConfigLine(t, cfg, "or_addr", quote(taken.Addr().String()))
	p := startProc(t, "relay", "--config", cfg)
	select {
	case <-p.done:
	case <-time.After(hangTimeout):
		t.Fatal("the relay did not exit")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	out := strings.TrimSuffix(p.stderr.String(), "\n")
	errors := 0
	for i, line := range strings.Split(out, "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d is not JSON (%v): %s", i+1, err, line)
		}
		if rec["level"] == "ERROR" {
			errors++
			if !strings.Contains(fmt.Sprint(rec["err"]), "address already in use") {
				t.Errorf("the error line does not say why: %s", line)
			}
		}
	}
	if errors != 1 {
		t.Fatalf("%d error lines, want 1:\n%s", errors, out)
	}
}
