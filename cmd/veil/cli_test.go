package main

import (
	"strings"
	"testing"
)

// TestCommandLineBehavesLikeItsPeers (issue 16 item 8): --version and -V;
// every command's -h, and veil help COMMAND, print its usage to stdout and
// exit 0; a bad flag is reported once, on stderr, with exit 2; --relays 0
// is an error, not the default.
func TestCommandLineBehavesLikeItsPeers(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-V"}, {"version"}} {
		code, out, errOut := runCLI(t, args...)
		if code != 0 || !strings.HasPrefix(out, "veil ") || errOut != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	for name := range commands() {
		if name == "version" || name == "config" {
			continue
		}
		for _, args := range [][]string{{name, "-h"}, {name, "--help"}, {"help", name}} {
			code, out, errOut := runCLI(t, args...)
			if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage: veil "+name) || !strings.Contains(out, "flags:") {
				t.Errorf("%v: exit %d, stdout %.80q, stderr %q", args, code, out, errOut)
			}
		}
	}
	for _, args := range [][]string{{"config", "-h"}, {"config", "init", "-h"}, {"config", "check", "-h"}} {
		code, out, errOut := runCLI(t, args...)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage: veil config") {
			t.Errorf("%v: exit %d, stdout %.80q, stderr %q", args, code, out, errOut)
		}
	}
	code, out, errOut := runCLI(t, "share", "--bogus", "x")
	if code != 2 || out != "" || strings.Count(errOut, "bogus") != 1 || strings.Contains(errOut, "Usage of") {
		t.Errorf("bad flag: exit %d, stdout %q, stderr %q; want one report", code, out, errOut)
	}
	for _, n := range []string{"0", "2", "-1"} {
		code, _, errOut = runCLI(t, "testnet", "--dir", t.TempDir(), "--relays", n)
		if code != 2 || !strings.Contains(errOut, "at least 3 relays") {
			t.Errorf("--relays %s: exit %d, stderr %q", n, code, errOut)
		}
	}
}
