package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"veil/relay/testnet"
)

// drainChunk is what the held server sends at a time; drainHeld what it
// sends before it waits, drainBody in all.
const (
	drainChunk = 64 << 10
	drainHeld  = 1 << 20
	drainBody  = 8 << 20
)

// heldServer serves /held: drainHeld bytes of testnet.Pattern, then
// nothing until release is closed, then the rest of drainBody; and /hello.
// A stream through it is live, and idle, for as long as the test likes.
func heldServer(t *testing.T, release <-chan struct{}) netip.AddrPort {
	t.Helper()
	block := make([]byte, drainChunk)
	for i := range block {
		block[i] = testnet.Pattern(int64(i))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/held" {
			io.WriteString(w, "hello")
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(drainBody))
		for sent := 0; sent < drainBody; sent += drainChunk {
			if sent == drainHeld {
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			if _, err := w.Write(block); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))
}

// hello GETs /hello through the proxy as SOCKS user user.
func hello(ctx context.Context, socks string, web netip.AddrPort, user string) error {
	c, err := testnet.DialSOCKS(ctx, socks, web, user, "x")
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /hello HTTP/1.0\r\nHost: %s\r\n\r\n", web)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && string(body) != "hello" {
		err = fmt.Errorf("body %q", body)
	}
	return err
}

// drainNet is a seed, two exits and two middles, each relay with metrics
// and a shutdown_wait of ten minutes (a drain that ends sooner ended by
// itself), and a proxy.
type drainNet struct {
	*localNet
	socks   string
	exits   map[string]*proc
	metrics map[string]string
}

func startDrainNet(t *testing.T) *drainNet {
	n := &drainNet{localNet: newLocalNet(t), exits: map[string]*proc{}, metrics: map[string]string{}}
	startProc(t, "seed", "--config", n.seedCfg)
	names := []string{"alpha", "bravo", "charlie", "delta"}
	for i, name := range names {
		cfg := n.relayConfig(name, i < 2)
		n.metrics[name] = freePort(t)
		setConfigLine(t, cfg, "metrics_addr", quote(n.metrics[name]))
		setConfigLine(t, cfg, "shutdown_wait", quote("10m"))
		p := startProc(t, "relay", "--config", cfg)
		if i < 2 {
			n.exits[name] = p
		}
	}
	n.waitRelays(t, names...)
	n.socks = freePort(t)
	setConfigLine(t, n.client, "socks_addr", quote(n.socks))
	setConfigLine(t, n.client, "local_testnet", "true")
	setConfigLine(t, n.client, "consensus_refresh", quote("1s"))
	startProc(t, "proxy", "--config", n.client)
	return n
}

// exitOf returns the exit whose metrics count one exit stream.
func (n *drainNet) exitOf(t *testing.T) string {
	t.Helper()
	for name := range n.exits {
		if metric(t, n.metrics[name], "veil_relay_exit_streams_total") == 1 {
			return name
		}
	}
	t.Fatal("no exit counts the stream")
	return ""
}

// openLiveStream opens the stream "live" to web's held page through n's
// proxy, retrying until the network carries it, and reads the part the
// server sends before it holds.
func openLiveStream(ctx context.Context, t *testing.T, n *drainNet, web netip.AddrPort) io.ReadCloser {
	t.Helper()
	m := testnet.Manifest{Socks: n.socks}
	for {
		body, err := dialWeb(ctx, m, web, "/held", "live")
		if err == nil {
			if _, err := io.CopyN(io.Discard, body, drainHeld); err != nil {
				body.Close()
				t.Fatalf("the live stream before the drain: %v", err)
			}
			return body
		}
		if ctx.Err() != nil {
			t.Fatalf("the live stream: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSIGTERMDrains (issue 16 item 4): an exit carrying a live stream gets
// SIGTERM. It says so at info, the stream finishes its transfer byte for
// byte, new streams (on new circuits and on the stream's own circuit) go
// through the other exit, the draining exit takes no new circuit or
// stream and leaves the consensus while it still carries the stream, and
// it exits 0 once the stream is done, with shutdown_wait (10 minutes) far
// off and no warning logged. Before, SIGTERM closed the relay at once and
// cut the stream.
func TestSIGTERMDrains(t *testing.T) {
	n := startDrainNet(t)
	release := make(chan struct{})
	web := heldServer(t, release)
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	body := openLiveStream(ctx, t, n, web)
	defer body.Close()
	name := n.exitOf(t)
	p := n.exits[name]
	created := metric(t, n.metrics[name], "veil_relay_circuits_created_total")

	drainStart := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	waitLog(t, p, "draining: ")
	p.wantLog(t, "1 streams; up to 10m0s")

	// New streams, on new circuits and on the live stream's own.
	for i, user := range []string{"a", "b", "c", "live"} {
		start := time.Now()
		if err := hello(ctx, n.socks, web, user); err != nil {
			t.Fatalf("a new stream (%d) while %s drains: %v", i+1, name, err)
		}
		t.Logf("a new stream as %q while %s drains: %v", user, name, time.Since(start).Round(time.Millisecond))
	}
	if got := metric(t, n.metrics[name], "veil_relay_exit_streams_total"); got != 1 {
		t.Errorf("the draining exit opened %d exit streams, want only the live one", got)
	}
	if got := metric(t, n.metrics[name], "veil_relay_circuits_created_total"); got != created {
		t.Errorf("the draining exit created %d circuits after SIGTERM", got-created)
	}
	for {
		listed, err := n.relays(t)
		if err == nil && !listed[name] {
			t.Logf("%s is out of the consensus %v after SIGTERM, still carrying the stream", name, time.Since(drainStart).Round(time.Millisecond))
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%s is still in the consensus (%v)", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case <-p.done:
		t.Fatalf("%s exited with its stream still open:\n%s", name, p.stderr)
	default:
	}

	close(release)
	if err := testnet.CheckPattern(body, drainBody-drainHeld); err != nil {
		t.Fatalf("the stream through the draining exit: %v", err)
	}
	body.Close()
	t.Logf("the live stream finished its transfer %v after SIGTERM", time.Since(drainStart).Round(time.Millisecond))
	select {
	case <-p.done:
	case <-time.After(hangTimeout):
		t.Fatalf("%s did not exit once its stream was done:\n%s", name, p.stderr)
	}
	t.Logf("%s exited %v after SIGTERM; its drain:\n%s", name, time.Since(drainStart).Round(time.Millisecond), grepLines(p.stderr.String(), "drain"))
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("%s exited %d after a drain", name, code)
	}
	// From the drain on: before it, gossip on a loaded machine (the race
	// detector, two cores) may warn of slow probes, which is no part of
	// a shutdown.
	log := p.stderr.String()
	_, drain, _ := strings.Cut(log, "draining: ")
	if !strings.Contains(drain, `msg="drained: `) {
		t.Errorf("%s did not log the end of its drain:\n%s", name, log)
	}
	if strings.Contains(drain, "level=WARN") || strings.Contains(drain, "level=ERROR") {
		t.Errorf("%s logged a warning or an error in its drain:\n%s", name, drain)
	}
}

// TestSecondSIGTERMEndsDrain: a relay draining with a stream that would
// hold it for its whole shutdown_wait (10 minutes) exits 0 at once on a
// second SIGTERM.
func TestSecondSIGTERMEndsDrain(t *testing.T) {
	n := startDrainNet(t)
	web := heldServer(t, make(chan struct{})) // never released
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	body := openLiveStream(ctx, t, n, web)
	defer body.Close()
	p := n.exits[n.exitOf(t)]
	p.cmd.Process.Signal(syscall.SIGTERM)
	// The exit may carry a spare circuit of the client's, or one left by
	// a build that failed at its last hop, beside the stream's: the
	// count of circuits is not the point, the stream is.
	waitLog(t, p, "circuits, 1 streams")
	second := time.Now()
	p.signal(t, syscall.SIGTERM)
	t.Logf("exited %v after the second SIGTERM", time.Since(second).Round(time.Millisecond))
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit %d after a second SIGTERM", code)
	}
	p.wantLog(t, "drain cut short by a second signal")
}

// grepLines returns the lines of log that contain s.
func grepLines(log, s string) string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
