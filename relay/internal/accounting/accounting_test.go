package accounting

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"veil/conf"
)

var daily = conf.AccountingStart{Unit: conf.PeriodDay, Hour: 12}

func TestRulesAndExhaustion(t *testing.T) {
	for _, tc := range []struct {
		rule    string
		in, out uint64
		spent   uint64
	}{
		{"max", 900, 800, 900}, {"sum", 900, 800, 1700}, {"in", 900, 800, 900}, {"out", 900, 800, 800},
	} {
		if got := Spent(tc.rule, tc.in, tc.out); got != tc.spent {
			t.Errorf("%s: spent %d, want %d", tc.rule, got, tc.spent)
		}
	}
	now := time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC)
	a, err := Open(t.TempDir(), 1000, "max", daily, now)
	if err != nil {
		t.Fatal(err)
	}
	a.Add(999, 500)
	if a.Exhausted() {
		t.Fatal("exhausted at 999 of 1000")
	}
	a.Add(1, 0)
	if !a.Exhausted() {
		t.Fatal("not exhausted at 1000 of 1000")
	}
	if a.Roll(now.Add(time.Hour)) || !a.Exhausted() {
		t.Fatal("rolled within a period")
	}
	if next := a.NextPeriod(); !next.Equal(time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("next period %v", next)
	}
	if !a.Roll(now.Add(24*time.Hour)) || a.Exhausted() || a.State().In != 0 {
		t.Fatalf("a new period did not start at zero: %+v", a.State())
	}
}

// TestRestartKeepsSpent: the state survives a restart within the period
// and is dropped in the next one.
func TestRestartKeepsSpent(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC)
	a, err := Open(dir, 1000, "sum", daily, now)
	if err != nil {
		t.Fatal(err)
	}
	a.Add(600, 500)
	if err := a.Save(); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir, 1000, "sum", daily, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if s := b.State(); s.In != 600 || s.Out != 500 || !b.Exhausted() {
		t.Fatalf("after a restart: %+v, exhausted %v", s, b.Exhausted())
	}
	c, err := Open(dir, 1000, "sum", daily, now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.State(); s.In != 0 || c.Exhausted() {
		t.Fatalf("the next period kept the last one's count: %+v", s)
	}
	os.WriteFile(filepath.Join(dir, FileName), []byte("{}"), 0o600)
	if _, err := Open(dir, 1000, "sum", daily, now); !errors.Is(err, ErrState) {
		t.Fatalf("a bad state file: %v", err)
	}
}

func TestParseStateRefuses(t *testing.T) {
	good := State{Version: 1, PeriodStart: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), In: 1, Out: 2}.Marshal()
	if s, err := ParseState(good); err != nil || s.Out != 2 {
		t.Fatalf("round trip: %+v, %v", s, err)
	}
	for _, bad := range []string{
		"", "{}", `{"version":2,"period_start":"2026-12-01T00:00:00Z"}`,
		`{"version":1}`, `{"version":1,"period_start":"2026-12-01T00:00:00Z","extra":1}`,
		`{"version":1,"period_start":"2026-12-01T00:00:00Z"} {}`, `{"version":1,"period_start":"2026-12-01T00:00:00Z","in":-1}`,
		strings.Repeat(" ", maxStateSize+1),
	} {
		if _, err := ParseState([]byte(bad)); !errors.Is(err, ErrState) {
			t.Errorf("%.60q: %v, want ErrState", bad, err)
		}
	}
	for i := range len(good) - 1 {
		if _, err := ParseState(good[:i]); err == nil {
			t.Errorf("truncated to %d bytes: accepted", i)
		}
	}
}

// FuzzParseState: what parses re-marshals to a file that parses to the
// same state.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"version":1,"period_start":"2026-12-01T00:00:00Z","in":1048576,"out":2097152}`)) // valid
	f.Add([]byte(`{"version":1,"period_start":"2026-12-01T00:00:00+01:00","in":0,"out":0}` + "\n")) // valid, zone
	f.Add([]byte(`{"version":1,"period_start":"0001-01-01T00:00:00Z"}`))                            // invalid: zero time
	f.Add([]byte(`{"version":1,"period_start":"2026-12-01T00:00:00Z","in":1e3}`))                   // invalid: float
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseState(b)
		if err != nil {
			return
		}
		s2, err := ParseState(s.Marshal())
		if err != nil {
			t.Fatalf("re-marshalled state does not parse: %v", err)
		}
		if !s2.PeriodStart.Equal(s.PeriodStart) || s2.In != s.In || s2.Out != s.Out {
			t.Fatalf("round trip changed %+v to %+v", s, s2)
		}
	})
}
