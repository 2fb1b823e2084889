package client

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"veil/relay/path"
)

// TestNoCircuitLoggedOncePerReason: a proxy that can build no circuit
// says why at info, once per distinct reason, and again after a circuit
// was built in between (issue 16 item 1).
func TestNoCircuitLoggedOncePerReason(t *testing.T) {
	var buf bytes.Buffer
	cl := New(Options{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	noGuard := fmt.Errorf("path: guard: %w", path.ErrNoGuard)
	tooFew := fmt.Errorf("path: two relays: %w", path.ErrNoPath)
	for range 3 {
		cl.noCircuit(noGuard)
	}
	cl.noCircuit(fmt.Errorf("no exit for this one destination: %w", path.ErrNoExit))
	cl.noCircuit(tooFew)
	cl.noCircuit(errors.New("client: extend to relay2: refused"))
	cl.noCircuit(errors.New("client: extend to relay3: refused"))
	cl.circuitBuilt()
	cl.circuitBuilt()
	cl.noCircuit(tooFew)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		"no circuit can be built", // no guard
		"no circuit can be built", // too few
		"building one failed",     // both failed builds
		"circuits are built again",
		"no circuit can be built", // too few, after the built circuit
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) || !strings.Contains(lines[i], "level=INFO") {
			t.Errorf("line %d: %s\nwant INFO %q", i+1, lines[i], w)
		}
	}
}
