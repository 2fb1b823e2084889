package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestManPage: veil(1) is built from the command line's own help, so it
// names every command with the usage that command prints.
func TestManPage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"help", "--man"}, &out, &errOut); code != 0 {
		t.Fatalf("veil help --man exited %d: %s", code, errOut.String())
	}
	page := out.String()
	if !strings.HasPrefix(page, ".TH VEIL 1 ") {
		t.Fatalf("the page does not start with .TH VEIL 1:\n%.200s", page)
	}
	for _, name := range manCommands {
		if !strings.Contains(page, ".SS "+name+"\n") {
			t.Errorf("no section for %q", name)
		}
		var help bytes.Buffer
		run(append(strings.Fields(name), "-h"), &help, io.Discard)
		first, _, _ := strings.Cut(help.String(), "\n")
		if !strings.Contains(page, roffEscape(first)) {
			t.Errorf("the page lacks %q, the first line of veil %s -h", first, name)
		}
	}
	for i, line := range strings.Split(page, "\n") {
		// A line of text that starts with a dot or a quote would be read
		// as a request and vanish.
		if (strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'")) && !roffRequest(line) {
			t.Errorf("line %d is read as an unknown request: %q", i+1, line)
		}
	}
}

// roffRequest reports whether line is one of the requests writeManPage
// writes.
func roffRequest(line string) bool {
	req, _, _ := strings.Cut(line, " ")
	switch req {
	case ".TH", ".SH", ".SS", ".PP", ".nf", ".fi", ".RS", ".RE", ".sp", ".TP", ".B", ".I", ".BR":
		return true
	}
	return false
}

// TestMakeInstall: `make install` puts the binary, the manual and the
// systemd units under PREFIX (and DESTDIR), with the units' paths filled
// in, and the units pass `systemd-analyze verify` where it exists.
func TestMakeInstall(t *testing.T) {
	bin := veilBinary(t)
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make here")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	prefix := filepath.Join(dest, "usr")
	etc := filepath.Join(dest, "etc")
	cmd := exec.Command("make", "-s", "-C", root, "install", "PREFIX="+prefix, "SYSCONFDIR="+etc, "VEIL="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	want := map[string]os.FileMode{
		"usr/bin/veil":                              0o755,
		"usr/share/man/man1/veil.1":                 0o644,
		"usr/lib/systemd/system/veil-relay.service": 0o644,
		"usr/lib/systemd/system/veil-seed.service":  0o644,
	}
	for rel, mode := range want {
		fi, err := os.Stat(filepath.Join(dest, rel))
		if err != nil {
			t.Errorf("make install left no %s: %v", rel, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", rel, fi.Mode().Perm(), mode)
		}
	}
	var units []string
	for _, role := range []string{"relay", "seed"} {
		unit := filepath.Join(prefix, "lib/systemd/system/veil-"+role+".service")
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if strings.Contains(text, "@BINDIR@") || strings.Contains(text, "@SYSCONFDIR@") {
			t.Errorf("%s still has a placeholder:\n%s", unit, text)
		}
		for _, line := range []string{
			"ExecStart=" + prefix + "/bin/veil " + role + " --config " + etc + "/veil/" + role + ".toml",
			"ExecReload=/bin/kill -HUP $MAINPID",
			"DynamicUser=yes", "StateDirectory=veil-" + role, "ProtectSystem=strict", "NoNewPrivileges=yes",
			"CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
		} {
			if !strings.Contains(text, "\n"+line+"\n") {
				t.Errorf("%s lacks the line %q", unit, line)
			}
		}
		units = append(units, unit)
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("no systemd-analyze here: the units were not verified")
		return
	}
	out, err := exec.Command(analyze, append([]string{"verify", "--man=no"}, units...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
