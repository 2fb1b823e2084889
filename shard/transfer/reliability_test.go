package transfer

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"veil/onion/keys"
)

// TestReliabilityRecord: a loss costs a relay almost all its weight, kept
// shards buy only a little of it back, losses fade with a two-week
// half-life, and the record survives a restart without naming any shard.
func TestReliabilityRecord(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), ReliabilityFile)
	r, err := LoadReliability(path, clock)
	if err != nil {
		t.Fatal(err)
	}
	good, bad, fixed := keys.NodeID{1}, keys.NodeID{2}, keys.NodeID{3}
	for range 30 {
		r.Kept(good)
	}
	r.Lost(bad)
	r.Kept(fixed)
	r.Lost(fixed)
	if w := r.Weight(good); w != 1 {
		t.Fatalf("a relay that never lost a shard weighs %v", w)
	}
	if w := r.Weight(bad); w > 0.02 || w <= 0 {
		t.Fatalf("a relay that lost its one shard weighs %v, want 1/51", w)
	}
	if err := r.Save(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	t.Logf("%s", b)
	now = now.Add(4 * lostHalfLife)
	r2, err := LoadReliability(path, clock)
	if err != nil {
		t.Fatal(err)
	}
	if w0, w := 2.0/(2+lostPenalty), r2.Weight(fixed); w < 0.2 || w <= w0 {
		t.Fatalf("eight weeks after its loss a relay weighs %v, want well above %v", w, w0)
	}
	if r2.Weight(good) != 1 || r2.Weight(bad) >= 1 {
		t.Fatal("the record was not read back")
	}
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadReliability(path, clock); err == nil {
		t.Fatal("a damaged record was read")
	}
}
