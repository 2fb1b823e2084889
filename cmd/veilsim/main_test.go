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

// TestLossRun: a small loss simulation prints a row per fraction, is
// deterministic given its seed, loses nothing with no dropping relay, and
// with a fifth dropping loses files placed blind and none placed with
// spot checks.
func TestLossRun(t *testing.T) {
	args := []string{"-loss", "-storage", "40", "-dropping", "0,0.2", "-trials", "6", "-size", "20000000"}
	var out, errs bytes.Buffer
	if code := run(args, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	t.Log(out.String())
	if !strings.Contains(out.String(), "| 0 % (0) | 0 % | 0.00 % ±") || !strings.Contains(out.String(), "| 20 % (8) |") {
		t.Fatalf("rows missing:\n%s", out.String())
	}
	var again bytes.Buffer
	run(args, &again, &bytes.Buffer{})
	if again.String() != out.String() {
		t.Errorf("two runs with one seed differ:\n%s\n%s", out.String(), again.String())
	}
	var row string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "| 20 %") {
			row = line
		}
	}
	cells := strings.Split(row, "|")
	if len(cells) < 7 || strings.HasPrefix(strings.TrimSpace(cells[3]), "0.00 %") || !strings.HasPrefix(strings.TrimSpace(cells[5]), "0.00 %") {
		t.Errorf("20 %% dropping: want files lost placed blind and none with spot checks: %q", row)
	}
}
