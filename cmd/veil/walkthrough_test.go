package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// walkthroughMarker comes before the README's by-hand network block; the
// test runs the first ```sh fence after it.
const walkthroughMarker = "<!-- walkthrough:"

// walkthroughPorts is how many ports the block uses from $PORT on.
const walkthroughPorts = 10

// TestReadmeWalkthrough runs the README's "directory network by hand"
// block with bash, exactly as written, with veil on PATH being this
// test's binary, and waits for it to fetch a page through the network it
// built. The block is read from README.md, so the two cannot drift.
func TestReadmeWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the walkthrough needs %s: %v", tool, err)
		}
	}
	bin := veilBinary(t)
	script := readmeWalkthrough(t)

	const token = "veil-walkthrough-page"
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, token)
	}))
	defer web.Close()

	dir := t.TempDir()
	port := freePortRange(t, walkthroughPorts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*hangTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		fmt.Sprintf("PORT=%d", port),
		"WEB="+web.URL+"/")
	// Its own process group, so the daemons it starts in the background
	// end with it: the whole group is killed, not just bash.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Files, not pipes: the daemons it leaves running inherit them, and
	// Wait would wait for a pipe to close until they end.
	stdout, stderr := logFile(t, dir, "walkthrough.out"), logFile(t, dir, "walkthrough.err")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	defer func() {
		// bash has exited; its background daemons remain in the group.
		// Wait until they are gone, so none writes into the temporary
		// directory while it is removed.
		syscall.Kill(-pgid, syscall.SIGKILL)
		for deadline := time.Now().Add(hangTimeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if syscall.Kill(-pgid, 0) != nil {
				return
			}
		}
		t.Errorf("the walkthrough's processes (group %d) outlived SIGKILL", pgid)
	}()
	start := time.Now()
	err := cmd.Wait()
	took := time.Since(start)
	out, _ := os.ReadFile(stdout.Name())
	if err != nil || !bytes.Contains(out, []byte(token)) {
		t.Errorf("the walkthrough (PORT=%d) ended after %v: %v\nstdout:\n%s", port, took.Round(time.Second), err, tail(out, 4000))
		for _, name := range []string{"walkthrough.err", "seed.log", "relay1.log", "relay2.log", "relay3.log", "proxy.log"} {
			b, _ := os.ReadFile(filepath.Join(dir, name))
			t.Logf("%s:\n%s", name, tail(b, 4000))
		}
		return
	}
	t.Logf("the page came through after %v", took.Round(100*time.Millisecond))
}

// readmeWalkthrough returns the shell block that follows the walkthrough
// marker in the repository's README.md.
func readmeWalkthrough(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	script, err := walkthroughBlock(string(readme))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	return script
}

// walkthroughBlock cuts the ```sh block after walkthroughMarker out of a
// README.
func walkthroughBlock(readme string) (string, error) {
	_, after, ok := strings.Cut(readme, walkthroughMarker)
	if !ok {
		return "", fmt.Errorf("no %q marker", walkthroughMarker)
	}
	_, after, ok = strings.Cut(after, "\n```sh\n")
	if !ok {
		return "", errors.New("no ```sh block after the walkthrough marker")
	}
	block, _, ok := strings.Cut(after, "\n```\n")
	if !ok {
		return "", errors.New("the walkthrough block never ends")
	}
	return block + "\n", nil
}

// freePortRange returns the first of n consecutive ports free on
// 127.0.0.1. They are released before returning, so another process may
// take one meanwhile; that is unlikely in the seconds the block needs.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		first := ln.Addr().(*net.TCPAddr).Port
		held := []net.Listener{ln}
		ok := first+n <= 65536
		for p := first; ok && p < first+n; p++ {
			if p != first {
				l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
				if err != nil {
					ok = false
					break
				}
				held = append(held, l)
			}
			// Gossip binds UDP on the same port too.
			u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			u.Close()
		}
		for _, l := range held {
			l.Close()
		}
		if ok {
			return first
		}
	}
	t.Fatalf("no %d consecutive free ports on 127.0.0.1", n)
	return 0
}

// logFile creates dir/name for a child's output.
func logFile(t *testing.T, dir, name string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// tail returns the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
