package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"veil/onion/keys"
)

// runCLI runs the CLI in-process and returns its exit status and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestConfigInitEveryRole(t *testing.T) {
	for _, role := range []string{"seed", "relay", "client"} {
		code, out, errOut := runCLI(t, "config", "init", "--role", role)
		if code != 0 || errOut != "" {
			t.Fatalf("%s: exit %d, stderr %q", role, code, errOut)
		}
		if !strings.HasPrefix(out, "# veil "+role) {
			t.Fatalf("%s: output does not start with a comment: %.60q", role, out)
		}
		// What init prints is what check accepts.
		path := filepath.Join(t.TempDir(), role+".toml")
		out = strings.Replace(out, "data_dir = ", "data_dir = '"+filepath.Join(t.TempDir(), "data")+"' # ", 1)
		if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errOut = runCLI(t, "config", "check", "--role", role, path)
		if role == "client" {
			// A client must pin the seeds it trusts, which no default can
			// know; the error says how to add them.
			if code == 0 || !strings.Contains(errOut, "veil: hint: add a [[seed]]") {
				t.Fatalf("client: exit %d, stderr %q", code, errOut)
			}
			continue
		}
		if code != 0 {
			t.Fatalf("%s: check of init output failed: %s", role, errOut)
		}
	}
}

func TestConfigErrorsNameTheLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "relay.toml")
	os.WriteFile(path, []byte("nickname = \"ok\"\nor_addr = \"127.0.0.1:70000\"\n"), 0o600)
	code, _, errOut := runCLI(t, "config", "check", "--role", "relay", path)
	if code != 1 || !strings.Contains(errOut, "relay.toml:2:") || !strings.Contains(errOut, "veil: hint: ") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if !strings.HasPrefix(errOut, "veil: error: ") {
		t.Fatalf("stderr does not start with veil: error: %q", errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	if code, _, errOut := runCLI(t, "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "relay"); code != 2 || !strings.Contains(errOut, "--config") {
		t.Fatalf("relay without config: exit %d, %q", code, errOut)
	}
	if code, _, _ := runCLI(t, "config", "init", "--role", "wizard"); code != 2 {
		t.Fatalf("bad role: exit %d", code)
	}
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "veil ") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}

func TestRelayRefusesUnsafeKeyFile(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if _, err := keys.Open(data, keys.Options{}); err != nil {
		t.Fatal(err)
	}
	_, tmpl, _ := runCLI(t, "config", "init", "--role", "relay")
	tmpl = strings.Replace(tmpl, "data_dir = ", "data_dir = '"+data+"' # ", 1)
	path := filepath.Join(dir, "relay.toml")
	os.WriteFile(path, []byte(tmpl), 0o600)
	// A key file others can read stops the node, with the fix.
	os.Chmod(filepath.Join(data, "identity.key"), 0o644)
	code, _, errOut := runCLI(t, "relay", "--config", path)
	if code == 0 || !strings.Contains(errOut, "veil: hint: run: chmod 600") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestReorderFlagsLinkFirst(t *testing.T) {
	fs := flag.NewFlagSet("share", flag.ContinueOnError)
	fs.String("config", "", "")
	fs.String("o", "", "")
	fs.Bool("qr", false, "")
	got := reorderFlags(fs, []string{"veil:abc", "-o", "out", "--config", "c.toml"})
	want := []string{"-o", "out", "--config", "c.toml", "veil:abc"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := reorderFlags(fs, []string{"--config=c.toml", "-", "-o", "x"}); strings.Join(got, " ") != "--config=c.toml -o x -" {
		t.Fatalf("got %q", got)
	}
	// A boolean flag takes no value: the file after it stays positional.
	if got := reorderFlags(fs, []string{"--qr", "file", "--config", "c"}); strings.Join(got, " ") != "--qr --config c file" {
		t.Fatalf("got %q", got)
	}
}

// TestConfigCheckListsEveryError (issue 16 item 10): config check reports
// every problem of a file, each on its own error line at its file:line,
// in file order, with its hint below it.
func TestConfigCheckListsEveryError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.toml")
	doc := "data_dir = " + quote(filepath.Join(t.TempDir(), "data")) + "\n" +
		"nickname = \"no-dashes\"\n" +
		"or_addr = \"127.0.0.1:70000\"\n" +
		"max_circuits = 0\n" +
		"gosip_addr = \"127.0.0.1:7947\"\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "config", "check", "--role", "relay", path)
	var at []string
	for _, line := range strings.Split(errOut, "\n") {
		if rest, ok := strings.CutPrefix(line, "veil: error: "+path+":"); ok {
			at = append(at, rest[:strings.IndexByte(rest, ':')])
		}
	}
	if code != 1 || strings.Join(at, ",") != "2,3,4,5" || strings.Count(errOut, "veil: hint: ") != 4 {
		t.Fatalf("exit %d, errors at lines %v, want 2,3,4,5 each with a hint:\n%s", code, at, errOut)
	}
}
