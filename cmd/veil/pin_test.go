package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"veil/conf"
	"veil/onion/keys"
)

// TestConfigPinPinsTheSeed: the table `veil config pin` prints, appended
// to a client config, loads and names the seed's directory and the node
// ID its keys give, the same the seed uses when it starts.
func TestConfigPinPinsTheSeed(t *testing.T) {
	dir := t.TempDir()
	seedFile := filepath.Join(dir, "seed.toml")
	seedDir := filepath.Join(dir, "seed")
	seed := "data_dir = \"" + seedDir + "\"\nnickname = \"seedA\"\ndir_addr = \"127.0.0.1:7380\"\n"
	if err := os.WriteFile(seedFile, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "config", "pin", seedFile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	store, err := keys.Open(seedDir, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clientFile := filepath.Join(dir, "client.toml")
	client := "data_dir = \"" + filepath.Join(dir, "client") + "\"\n" + out
	if err := os.WriteFile(clientFile, []byte(client), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.LoadClient(clientFile)
	if err != nil {
		t.Fatalf("%v\n%s", err, client)
	}
	want := conf.SeedPin{Name: "seedA", DirURL: "http://127.0.0.1:7380", Identity: store.Identity().ID().String()}
	if len(cfg.Seeds) != 1 || cfg.Seeds[0] != want {
		t.Fatalf("pinned %+v, want %+v", cfg.Seeds, want)
	}

	if code, _, errOut := runCLI(t, "config", "pin"); code == 0 || !strings.Contains(errOut, "want one FILE") {
		t.Errorf("no FILE: exit %d, %q", code, errOut)
	}
}
