package testnet

import (
	"slices"
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
