package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"veil/relay/testnet"
	"veil/shard"
)

// veilIn runs veil with args in the directory dir, the link on standard
// input, and returns its exit status, stdout and stderr.
func veilIn(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(veilBinary(t), args...)
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// sharePath shares a file or directory with `veil share` and returns
// the link.
func sharePath(t *testing.T, m testnet.Manifest, p string) string {
	t.Helper()
	code, out, errOut := veilIn(t, filepath.Dir(p), "share", "--config", m.ClientConfig, p)
	link := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(link, "veil:") {
		t.Fatalf("share %s: exit %d, %q\n%s", p, code, out, errOut)
	}
	return link
}

// emptyDir fails the test unless dir holds exactly the names given.
func dirHolds(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(names, " ") {
		t.Fatalf("%s holds %q, want %q", dir, got, names)
	}
}

// TestShareLikeCroc (issue 16 item 9): the name travels in the manifest
// and `fetch LINK` restores it; fetch never overwrites without --force;
// a directory comes back as the same tree; a hostile sharer's archive
// writes nothing outside the directory fetched into.
func TestShareLikeCroc(t *testing.T) {
	_, m := startTestnet(t, 6)
	home := t.TempDir()
	data := make([]byte, 3<<20+7)
	rand.Read(data)
	src := filepath.Join(home, "report.pdf")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	link := sharePath(t, m, src)

	t.Run("file", func(t *testing.T) {
		there := t.TempDir()
		code, out, errOut := veilIn(t, there, "fetch", "--config", m.ClientConfig, link)
		if code != 0 || strings.TrimSpace(out) != "report.pdf" {
			t.Fatalf("fetch without -o: exit %d, stdout %q\n%s", code, out, errOut)
		}
		if got, _ := os.ReadFile(filepath.Join(there, "report.pdf")); !bytes.Equal(got, data) {
			t.Fatalf("report.pdf holds %d bytes, want %d", len(got), len(data))
		}
		// Again: the file is there, and is kept.
		mine := filepath.Join(there, "report.pdf")
		os.WriteFile(mine, []byte("my own edits"), 0o600)
		code, _, errOut = veilIn(t, there, "fetch", "--config", m.ClientConfig, link)
		if code != 1 || !strings.Contains(errOut, "veil: error: fetch: report.pdf already exists") || !strings.Contains(errOut, "--force") {
			t.Fatalf("fetch over an existing file: exit %d\n%s", code, errOut)
		}
		if got, _ := os.ReadFile(mine); string(got) != "my own edits" {
			t.Fatal("fetch overwrote a file without --force")
		}
		// -o naming the file is refused before the network is asked.
		code, _, errOut = veilIn(t, there, "fetch", "--config", m.ClientConfig, "-o", mine, link)
		if code != 1 || !strings.Contains(errOut, "already exists") {
			t.Fatalf("fetch -o an existing file: exit %d\n%s", code, errOut)
		}
		code, _, errOut = veilIn(t, there, "fetch", "--config", m.ClientConfig, "--force", link)
		if got, _ := os.ReadFile(mine); code != 0 || !bytes.Equal(got, data) {
			t.Fatalf("fetch --force: exit %d, %d bytes\n%s", code, len(got), errOut)
		}
		// -o an existing directory: the name inside it.
		sub := filepath.Join(there, "inbox")
		os.Mkdir(sub, 0o700)
		code, out, errOut = veilIn(t, there, "fetch", "--config", m.ClientConfig, "-o", sub, link)
		if got, _ := os.ReadFile(filepath.Join(sub, "report.pdf")); code != 0 || !bytes.Equal(got, data) || strings.TrimSpace(out) != filepath.Join(sub, "report.pdf") {
			t.Fatalf("fetch -o DIR: exit %d, %d bytes, stdout %q\n%s", code, len(got), out, errOut)
		}
		dirHolds(t, there, "inbox", "report.pdf")
	})

	t.Run("directory", func(t *testing.T) {
		spec := map[string]string{
			"notes.txt": "hello", "empty": "", "photos/": "", "photos/a.jpg": string(data[:1<<20]),
			"photos/2026/b.jpg": string(data[1<<20:]), "nothing here/": "",
		}
		tree := filepath.Join(t.TempDir(), "holiday")
		writeFiles(t, tree, spec)
		os.Chmod(filepath.Join(tree, "notes.txt"), 0o755)
		dirLink := sharePath(t, m, tree)
		there := t.TempDir()
		code, out, errOut := veilIn(t, there, "fetch", "--config", m.ClientConfig, dirLink)
		if code != 0 || strings.TrimSpace(out) != "holiday" {
			t.Fatalf("fetch of a directory: exit %d, stdout %q\n%s", code, out, errOut)
		}
		want, got := readTree(t, tree), readTree(t, filepath.Join(there, "holiday"))
		if len(got) != len(want) {
			t.Fatalf("fetched %d entries, shared %d: %v", len(got), len(want), got)
		}
		for name, body := range want {
			if got[name] != body {
				t.Fatalf("%s differs: %d bytes, want %d", name, len(got[name]), len(body))
			}
		}
		if st, _ := os.Stat(filepath.Join(there, "holiday", "notes.txt")); st.Mode().Perm() != 0o755&^umask() {
			t.Fatalf("notes.txt is %v, shared executable", st.Mode().Perm())
		}
		// Again: refused, and the tree as it was; --force replaces it.
		extra := filepath.Join(there, "holiday", "mine.txt")
		os.WriteFile(extra, []byte("mine"), 0o600)
		code, _, errOut = veilIn(t, there, "fetch", "--config", m.ClientConfig, dirLink)
		if _, err := os.Stat(extra); code != 1 || err != nil || !strings.Contains(errOut, "holiday already exists") {
			t.Fatalf("fetch over an existing directory: exit %d, %v\n%s", code, err, errOut)
		}
		code, _, errOut = veilIn(t, there, "fetch", "--config", m.ClientConfig, "--force", dirLink)
		if _, err := os.Stat(extra); code != 0 || err == nil {
			t.Fatalf("fetch --force of a directory: exit %d, mine.txt %v\n%s", code, err, errOut)
		}
		dirHolds(t, there, "holiday")
	})

	t.Run("hostile tree", func(t *testing.T) {
		// The sharer is this test: it uses the client library directly,
		// as a hostile sharer would, to share an archive that climbs out.
		archive := hostileArchive(t, fileHeader("ok"), fileHeader("../escaped"))
		ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
		defer cancel()
		n, err := openNetwork(ctx, m.ClientConfig, os.Stderr)
		if err != nil {
			t.Fatal(err)
		}
		defer n.close()
		p, err := paramsFor(n.dc.View())
		if err != nil {
			t.Fatal(err)
		}
		evil, err := n.net.Share(ctx, bytes.NewReader(archive), int64(len(archive)), shard.Meta{Content: shard.ContentTree, Name: "gift"}, p, shard.DefaultTTL, nil)
		if err != nil {
			t.Fatal(err)
		}
		parent := t.TempDir()
		there := filepath.Join(parent, "here")
		os.Mkdir(there, 0o700)
		code, _, errOut := veilIn(t, there, "fetch", "--config", m.ClientConfig, evil.String())
		if code != 1 || !strings.Contains(errOut, `refusing the directory: entry path "../escaped"`) {
			t.Fatalf("hostile archive: exit %d\n%s", code, errOut)
		}
		dirHolds(t, there)
		dirHolds(t, parent, "here")
	})
}

func fileHeader(name string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}
}

// umask is the process's umask, which the modes of fetched files obey.
func umask() os.FileMode {
	old := syscall.Umask(0)
	syscall.Umask(old)
	return os.FileMode(old)
}

// TestInterruptedFetchLeavesNothing (issue 16 item 9): Ctrl-C (SIGINT) or
// SIGTERM during a fetch says "interrupted", exits 130 and leaves no
// temporary file and no output.
func TestInterruptedFetchLeavesNothing(t *testing.T) {
	_, m := startTestnet(t, 6)
	dir := t.TempDir()
	_, link := shareRandom(t, m, dir, 16<<20+5)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		out := filepath.Join(dir, fmt.Sprint("out-", sig))
		f := startFetch(t, m, link, out)
		waitPart(t, f, out, 1<<20)
		start := time.Now()
		f.signal(t, sig)
		code := f.cmd.ProcessState.ExitCode()
		if code != 130 || !strings.Contains(f.stderr.String(), "veil: interrupted\n") || strings.Contains(f.stderr.String(), "veil: error") {
			t.Fatalf("%v: exit %d\n%s", sig, code, f.stderr)
		}
		if left := parts(t, out); len(left) != 0 {
			t.Fatalf("%v left %v", sig, left)
		}
		if _, err := os.Lstat(out); err == nil {
			t.Fatalf("%v left %s", sig, out)
		}
		t.Logf("%v: ended %v after the signal", sig, time.Since(start).Round(time.Millisecond))
	}
}
