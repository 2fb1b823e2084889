package gossip

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The tests' fake pointer format, standing in for the directory's signed
// pointers: name ":" seq ":" hex(sha256(descriptor)), optionally followed
// by ":" and padding (to give it a realistic size).

func fakePointer(name string, seq uint64, desc []byte) []byte {
	d := sha256.Sum256(desc)
	return fmt.Appendf(nil, "%s:%d:%s", name, seq, hex.EncodeToString(d[:]))
}

func fakeDescriptor(name string, seq uint64) []byte {
	return fmt.Appendf(nil, "descriptor of %s, sequence %d", name, seq)
}

func fakeVerifyPointer(name string, _ netip.AddrPort, p []byte) (PointerInfo, error) {
	parts := strings.SplitN(string(p), ":", 4)
	if len(parts) < 3 {
		return PointerInfo{}, fmt.Errorf("fake pointer: %d fields", len(parts))
	}
	if parts[0] != name {
		return PointerInfo{}, fmt.Errorf("fake pointer: names %q, node is %q", parts[0], name)
	}
	seq, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil {
		return PointerInfo{}, fmt.Errorf("fake pointer: sequence: %w", err)
	}
	d, err := hex.DecodeString(parts[2])
	if err != nil || len(d) != DigestSize {
		return PointerInfo{}, fmt.Errorf("fake pointer: bad digest")
	}
	info := PointerInfo{Key: name, Seq: seq}
	copy(info.Digest[:], d)
	return info, nil
}

func fakeVerifyDescriptor(p PointerInfo, desc []byte) error {
	if sha256.Sum256(desc) != p.Digest {
		return fmt.Errorf("fake descriptor: digest mismatch")
	}
	return nil
}

// testConfig returns a Fast config for a node on 127.0.0.1 with the fake
// format. Set GOSSIP_DEBUG=1 to see logs.
func testConfig(name string, seq uint64, join ...string) Config {
	desc := fakeDescriptor(name, seq)
	cfg := Config{
		Name:             name,
		BindAddr:         "127.0.0.1:0",
		Join:             join,
		Pointer:          fakePointer(name, seq, desc),
		Descriptor:       desc,
		VerifyPointer:    fakeVerifyPointer,
		VerifyDescriptor: fakeVerifyDescriptor,
		Timing:           Fast(),
	}
	if os.Getenv("GOSSIP_DEBUG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", name)
	}
	return cfg
}

// start starts a node that the test closes at its end.
func start(t testing.TB, cfg Config) *Node {
	t.Helper()
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// checkLeaks fails the test if goroutines outlive it. Call it first, so
// that its cleanup runs after every node's Close.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(converge)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines leaked: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// member returns n's view of name.
func member(n *Node, name string) (Member, bool) {
	for _, m := range n.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// hasDescriptor reports whether n lists name with exactly desc.
func hasDescriptor(n *Node, name string, desc []byte) bool {
	m, ok := member(n, name)
	return ok && bytes.Equal(m.Descriptor, desc)
}

// waitEvent reads n's events until one of type typ about name arrives.
func waitEvent(t testing.TB, n *Node, typ EventType, name string, timeout time.Duration) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-n.Events():
			if !ok {
				t.Fatalf("%s: events closed while waiting for %v of %s", n.Name(), typ, name)
			}
			if ev.Type == typ && ev.Name == name {
				return
			}
		case <-timer.C:
			t.Fatalf("%s: no %v event for %s within %v", n.Name(), typ, name, timeout)
		}
	}
}

// freePort returns a port on 127.0.0.1 that was free for TCP and UDP a
// moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// logRecorder is a slog handler that keeps message texts.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

func (r *logRecorder) saw(prefix string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if strings.HasPrefix(m, prefix) {
			return true
		}
	}
	return false
}

// countingVerifier wraps the fake verifiers and counts refusals per name.
type countingVerifier struct {
	mu       sync.Mutex
	refused  map[string]int
	descFail atomic.Int64
}

func (c *countingVerifier) pointer(name string, addr netip.AddrPort, p []byte) (PointerInfo, error) {
	info, err := fakeVerifyPointer(name, addr, p)
	if err != nil {
		c.mu.Lock()
		if c.refused == nil {
			c.refused = make(map[string]int)
		}
		c.refused[name]++
		c.mu.Unlock()
	}
	return info, err
}

func (c *countingVerifier) descriptor(p PointerInfo, d []byte) error {
	err := fakeVerifyDescriptor(p, d)
	if err != nil {
		c.descFail.Add(1)
	}
	return err
}

func (c *countingVerifier) refusals(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused[name]
}

// lax accepts any pointer of the fake format, whatever name it carries,
// and any descriptor: an attacker's own verifiers.
func laxPointer(_ string, addr netip.AddrPort, p []byte) (PointerInfo, error) {
	name, _, _ := strings.Cut(string(p), ":")
	return fakeVerifyPointer(name, addr, p)
}

func laxDescriptor(PointerInfo, []byte) error { return nil }
