package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestSmallRun: a small simulation runs, prints both tables with a row
// per adversary and fraction, and is deterministic given its seed.
func TestSmallRun(t *testing.T) {
	args := []string{"-relays", "300", "-f", "0.2", "-circuits", "500", "-clients", "50", "-shares", "50", "-fresh", "10"}
	var out, errs bytes.Buffer
	if code := run(args, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	for _, r := range roles {
		if n := strings.Count(out.String(), "| "+r.name+" | 20 %"); n != 2 {
			t.Errorf("%q: %d rows, want one in each table", r.name, n)
		}
	}
	var again bytes.Buffer
	run(args, &again, &bytes.Buffer{})
	if again.String() != out.String() {
		t.Errorf("two runs with one seed differ:\n%s\n%s", out.String(), again.String())
	}
	if code := run([]string{"-f", "1.5"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Errorf("-f 1.5: exit %d, want 2", code)
	}
}
