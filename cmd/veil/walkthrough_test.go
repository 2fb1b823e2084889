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
	const token = "veil-walkthrough-page"
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, token)
	}))
	defer web.Close()
	out, took, err := runWalkthrough(t, readmeWalkthrough(t), "WEB="+web.URL+"/")
	if err != nil || !bytes.Contains(out, []byte(token)) {
		t.Fatalf("the walkthrough ended after %v without the page: %v\nstdout:\n%s", took.Round(time.Second), err, tail(out, 4000))
	}
	t.Logf("the page came through after %v", took.Round(100*time.Millisecond))
	// The block ends with veil status, which says a circuit can be had.
	if !bytes.Contains(out, []byte(circuitsOK)) {
		t.Errorf("veil status does not say %q:\n%s", circuitsOK, tail(out, 4000))
	}
}

// TestReadmeWalkthroughTwoRelays runs the README's block with two relays
// instead of three, the mistake the old walkthrough made: the proxy must
// say at info why it builds no circuit, and veil status the same.
func TestReadmeWalkthroughTwoRelays(t *testing.T) {
	script := readmeWalkthrough(t)
	const three, two = "for i in 1 2 3; do", "for i in 1 2; do"
	if !strings.Contains(script, three) {
		t.Fatalf("the README's block has no %q to change", three)
	}
	script = strings.Replace(script, three, two, 1)
	// Up to the proxy's start; then wait for its reason, not a page.
	proxyAt := strings.Index(script, "veil proxy ")
	if proxyAt < 0 {
		t.Fatal("the README's block starts no veil proxy")
	}
	lineEnd := strings.Index(script[proxyAt:], "\n")
	const why = "the consensus lists 2 running relays, and a circuit needs 3"
	script = script[:proxyAt+lineEnd+1] + `
until grep -q "no circuit can be built.*` + why + `" proxy.log; do sleep 1; done
veil status --config client.toml
`
	out, took, err := runWalkthrough(t, script)
	if err != nil {
		t.Fatalf("ended after %v: %v\nstdout:\n%s", took.Round(time.Second), err, tail(out, 4000))
	}
	if want := "circuits: none can be built: path: path to the destination: no path: " + why; !bytes.Contains(out, []byte(want)) {
		t.Errorf("veil status does not say %q:\n%s", want, tail(out, 4000))
	}
}

// runWalkthrough runs script with bash in a temporary directory, with veil
// on PATH being this test's binary, PORT the first of walkthroughPorts
// free ports, and env added. It returns what the script printed, how long
// it took and how it ended; the daemons it left running are killed
// before it returns.
func runWalkthrough(t *testing.T, script string, env ...string) (stdout []byte, took time.Duration, err error) {
	t.Helper()
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the walkthrough needs %s: %v", tool, err)
		}
	}
	bin := veilBinary(t)
	dir := t.TempDir()
	port := freePortRange(t, walkthroughPorts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*hangTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(),
		"PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		fmt.Sprintf("PORT=%d", port)), env...)
	// Its own process group, so the daemons it starts in the background
	// end with it: the whole group is killed, not just bash.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Files, not pipes: the daemons it leaves running inherit them, and
	// Wait would wait for a pipe to close until they end.
	outFile := logFile(t, dir, "walkthrough.out")
	cmd.Stdout, cmd.Stderr = outFile, logFile(t, dir, "walkthrough.err")
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
	err = cmd.Wait()
	took = time.Since(start)
	stdout, _ = os.ReadFile(outFile.Name())
	if err != nil || t.Failed() {
		t.Logf("PORT=%d", port)
		for _, name := range []string{"walkthrough.err", "seed.log", "relay1.log", "relay2.log", "relay3.log", "proxy.log"} {
			b, _ := os.ReadFile(filepath.Join(dir, name))
			t.Logf("%s:\n%s", name, tail(b, 4000))
		}
	}
	return stdout, took, err
}

// circuitsOK is what veil status says of a network a circuit can cross.
const circuitsOK = "circuits: a three-hop path can be drawn"

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
