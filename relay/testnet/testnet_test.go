package testnet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestChildEnvSharesTheCPUs(t *testing.T) {
	// Spare capacity: childEnv must not write into its caller's array.
	base := append(make([]string, 0, 8), "HOME=/h", "PATH=/bin")
	for _, tc := range []struct {
		cpus, procs int
		want        string
	}{
		{2, 8, "GOMAXPROCS=1"},
		{16, 8, "GOMAXPROCS=2"},
		{64, 8, "GOMAXPROCS=8"},
		{1, 0, "GOMAXPROCS=1"},
	} {
		env := childEnv(base, tc.cpus, tc.procs)
		if got := env[len(env)-1]; got != tc.want || len(env) != len(base)+1 {
			t.Errorf("%d cpus, %d processes: got %q, want %q appended", tc.cpus, tc.procs, env, tc.want)
		}
	}
	if spare := base[:3][2]; spare != "" {
		t.Fatalf("childEnv wrote %q into its argument's array", spare)
	}
}

func TestChildEnvKeepsTheUsersChoice(t *testing.T) {
	env := []string{"GOMAXPROCS=4", "PATH=/bin"}
	if got := childEnv(env, 2, 8); !slices.Equal(got, env) {
		t.Fatalf("got %q, want %q unchanged", got, env)
	}
}

// TestManifestIsNeverSeenHalfWritten: scripts and tests poll for
// testnet.json and parse it as soon as it exists, so a reader racing a
// rewrite must see the old document or the new one, whole. A plain
// os.WriteFile truncates first and fails this within a few rewrites.
func TestManifestIsNeverSeenHalfWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), ManifestName)
	manifest := func(relays int) Manifest {
		m := Manifest{Socks: "127.0.0.1:1080", ClientConfig: "/tmp/client.toml", Web: "http://127.0.0.1:8080/"}
		for i := range relays {
			m.Relays = append(m.Relays, Proc{Name: fmt.Sprintf("relay%d", i), PID: 1000 + i,
				Config: strings.Repeat("c", 200), Log: strings.Repeat("l", 200), ORAddr: "127.0.0.1:9000"})
		}
		return m
	}
	small, large := manifest(1), manifest(MaxNodes)
	if err := writeManifest(path, small); err != nil {
		t.Fatal(err)
	}

	const rewrites = 50
	done := make(chan error, 1)
	go func() {
		for i := range rewrites {
			m := small
			if i%2 == 0 {
				m = large
			}
			if err := writeManifest(path, m); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	reads := 0
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d reads during %d rewrites", reads, rewrites)
			entries, err := os.ReadDir(filepath.Dir(path))
			if err != nil || len(entries) != 1 {
				t.Fatalf("directory after the rewrites: %v %v, want only %s", entries, err, ManifestName)
			}
			return
		default:
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read %d: %v", reads, err)
		}
		var m Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("read %d saw a partial manifest (%d bytes): %v", reads, len(raw), err)
		}
		if len(m.Relays) != 1 && len(m.Relays) != MaxNodes {
			t.Fatalf("read %d: %d relays, want 1 or %d", reads, len(m.Relays), MaxNodes)
		}
		reads++
	}
}
