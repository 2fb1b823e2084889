package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"veil/directory"
	"veil/relay/testnet"
)

// fetchedLine is dirclient's debug line after a fetch: how the documents
// came and the body bytes read on the wire.
var fetchedLine = regexp.MustCompile(`msg="dirclient: consensus fetched( through the directory cache)?".* whole=(\d+) diffs=(\d+) not_modified=(\d+) bytes=(\d+)`)

type fetched struct {
	throughCache              bool
	whole, diffs, notModified int
	bytes                     int
}

// lastFetched returns the last fetch a one-shot command logged.
func lastFetched(t *testing.T, log string) fetched {
	t.Helper()
	all := fetchedLine.FindAllStringSubmatch(log, -1)
	if len(all) == 0 {
		t.Fatalf("no fetch logged:\n%s", log)
	}
	m := all[len(all)-1]
	n := func(s string) int {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return fetched{throughCache: m[1] != "", whole: n(m[2]), diffs: n(m[3]), notModified: n(m[4]), bytes: n(m[5])}
}

// TestClientFetchesDiffsThroughGuard: a testnet of real processes, three
// seeds and six relays, every relay a directory cache. A `veil share`
// with no cache bootstraps from the seeds with the three whole documents;
// later shares, seconds apart so that every seed has signed anew, fetch
// through their guard and get diffs, far fewer bytes, and the documents
// they then cache are the seeds' signed ones (issue 14 item 7).
func TestClientFetchesDiffsThroughGuard(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tn")
	p := startProc(t, "testnet", "--dir", dir, "--relays", "6", "--seeds", "3")
	var m testnet.Manifest
	if err := json.Unmarshal(waitManifest(t, p, dir), &m); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(m.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	mine := t.TempDir()
	data := filepath.Join(mine, "client")
	for re, to := range map[string]string{`(?m)^data_dir = .*$`: fmt.Sprintf("data_dir = %q", data), `(?m)^log_level = .*$`: `log_level = "debug"`} {
		cfg = regexp.MustCompile(re).ReplaceAll(cfg, []byte(to))
	}
	config := filepath.Join(mine, "client.toml")
	if err := os.WriteFile(config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(mine, "in")
	buf := make([]byte, 10_007)
	rand.Read(buf)
	if err := os.WriteFile(in, buf, 0o600); err != nil {
		t.Fatal(err)
	}
	share := func() fetched {
		t.Helper()
		var log bytes.Buffer
		cmd := exec.Command(veilBinary(t), "share", "--config", config, in)
		cmd.Stderr = &log
		if out, err := cmd.Output(); err != nil {
			t.Fatalf("share: %v\n%s\n%s", err, out, log.String())
		}
		return lastFetched(t, log.String())
	}

	cold := share()
	if cold.throughCache || cold.whole != 3 {
		t.Fatalf("first share, no cache: %+v, want three whole documents from the seeds", cold)
	}
	// The seeds sign every 2 s: by now each has a newer document. The
	// first share through the guard may still get a whole document: a
	// cache of a testnet that is still filling backs off while its view
	// is too thin for a circuit, and misses the documents the client
	// bootstrapped with. The next one holds documents the cache served.
	time.Sleep(3 * time.Second)
	first := share()
	time.Sleep(3 * time.Second)
	warm := share()
	t.Logf("three seeds, six relays: bootstrap read %d bytes (%d whole documents); shares seconds apart read %d (%d diffs, %d whole, %d not modified), then %d (%d diffs, %d whole, %d not modified) through their guard",
		cold.bytes, cold.whole, first.bytes, first.diffs, first.whole, first.notModified, warm.bytes, warm.diffs, warm.whole, warm.notModified)
	if !warm.throughCache || warm.diffs != 3 {
		t.Fatalf("third share: %+v, want three diffs through the guard", warm)
	}
	if warm.bytes*3 > cold.bytes {
		t.Errorf("diffs cost %d bytes, whole documents %d: want under a third", warm.bytes, cold.bytes)
	}
	ids := map[string]bool{}
	for _, s := range m.Seeds {
		ids[s.ID] = true
	}
	files, err := filepath.Glob(filepath.Join(data, "consensus", "*.bin"))
	if err != nil || len(files) != 3 {
		t.Fatalf("cached documents %v (%v), want 3", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := directory.ParseConsensus(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if id := c.SeedID().String(); !ids[id] || filepath.Base(f) != id+".bin" {
			t.Fatalf("%s: signed by %s", f, id)
		}
	}
}
