package conf

import (
	"fmt"
	"testing"
	"time"
)

// TestRelayDirCacheSeeds: a relay's [[dir_cache_seed]] tables are checked
// as a client's [[seed]] tables, with errors naming the table and line.
func TestRelayDirCacheSeeds(t *testing.T) {
	pin := func(name, url, id string) string {
		return fmt.Sprintf("[[dir_cache_seed]]\nname = %q\ndir_url = %q\nidentity = %q\n", name, url, id)
	}
	r, err := ParseRelay("relay.toml", []byte("dir_cache_refresh = \"1s\"\n"+pin("s1", "http://127.0.0.1:7080", idA)))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.DirCacheSeeds) != 1 || r.DirCacheSeeds[0].Identity != idA || r.DirCacheRefresh.D() != time.Second {
		t.Fatalf("parsed %+v, refresh %v", r.DirCacheSeeds, r.DirCacheRefresh)
	}
	if def := DefaultRelay(); len(def.DirCacheSeeds) != 0 || def.DirCacheRefresh.D() != 30*time.Second {
		t.Fatalf("default relay: pins %v, refresh %v", def.DirCacheSeeds, def.DirCacheRefresh)
	}
	for _, tc := range []badCase{
		{"twice", pin("s1", "http://127.0.0.1:7080", idA) + pin("s2", "http://127.0.0.1:7081", idA), 8, "dir_cache_seed[1].identity", "pinned twice", "list each seed once"},
		{"bad url", pin("s1", "ftp://x", idA), 3, "dir_cache_seed[0].dir_url", "must start with http://", ""},
		{"bad name", pin("s-1", "http://127.0.0.1:7080", idA), 2, "dir_cache_seed[0].name", "has '-'", ""},
		{"zero refresh", "dir_cache_refresh = \"0s\"\n", 1, "dir_cache_refresh", "must be positive", ""},
	} {
		_, err := ParseRelay("test.toml", []byte(tc.doc))
		checkBad(t, tc, err)
	}
}
