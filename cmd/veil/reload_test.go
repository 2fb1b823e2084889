package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPReloads (issue 16 item 4): SIGHUP makes a relay read its
// config again: what can change at once does (here contact and
// log_level), what cannot is named and keeps its value (or_addr), a config
// that does not load is refused with the relay still running, and SIGTERM
// still ends it cleanly. Before, SIGHUP killed every daemon with status 129
// and no log.
func TestSIGHUPReloads(t *testing.T) {
	n := newLocalNet(t)
	startProc(t, "seed", "--config", n.seedCfg)
	cfg := n.relayConfig("alpha", false)
	p := startProc(t, "relay", "--config", cfg)
	waitLog(t, p, "relay running")

	setConfigLine(t, cfg, "contact", quote("ops@example.org"))
	setConfigLine(t, cfg, "log_level", quote("debug"))
	setConfigLine(t, cfg, "or_addr", quote("127.0.0.1:1"))
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p, `msg="config reloaded" applied=`)
	waitLog(t, p, "keys=or_addr")
	if log := p.stderr.String(); !strings.Contains(log, "contact") || !strings.Contains(log, "log_level") {
		t.Fatalf("the reload did not apply contact and log_level:\n%s", log)
	}

	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(raw, []byte("\nno_such_key = 1\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p, "reload: the config was not applied")
	select {
	case <-p.done:
		t.Fatalf("the relay exited after a reload:\n%s", p.stderr.String())
	case <-time.After(500 * time.Millisecond):
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// waitLog waits until p has logged a line containing want.
func waitLog(t *testing.T, p *proc, want string) {
	t.Helper()
	deadline := time.Now().Add(hangTimeout)
	for !strings.Contains(p.stderr.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s logged no %q:\n%s", p.cmd.Args[1], want, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
