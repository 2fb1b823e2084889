package conf

import (
	"slices"
	"testing"
)

func TestChanged(t *testing.T) {
	a, b := DefaultRelay(), DefaultRelay()
	if got := Changed(&a, &b); len(got) != 0 {
		t.Fatalf("equal configs: %v", got)
	}
	b.LogLevel = "debug"            // in the embedded Common table
	b.ExitPolicy = []string{"x"}    // a slice
	b.NetworkKey = "k"              // in the embedded Gossip table
	b.DirCacheSeeds = []SeedPin{{}} // a table array
	got := Changed(&a, &b)
	for _, k := range []string{"log_level", "exit_policy", "network_key", "dir_cache_seed"} {
		if !slices.Contains(got, k) {
			t.Errorf("%s not reported in %v", k, got)
		}
	}
	if len(got) != 4 {
		t.Errorf("changed %v, want 4 keys", got)
	}
}
