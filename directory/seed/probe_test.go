package seed

import (
	"context"
	"errors"
	"testing"

	"veil/onion/keys"
)

// A check that fails early is tried again, up to probeAttempts times, so
// one connection shed by a busy port does not drop a relay; one that keeps
// failing reports its last error.
func TestProbeRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failures int
		wantErr  bool
	}{
		{"first try", 0, false},
		{"after two failures", probeAttempts - 1, false},
		{"always failing", probeAttempts, true},
	} {
		calls := 0
		s := &Seed{probe: func(ctx context.Context, addr string, id keys.NodeID) error {
			if _, ok := ctx.Deadline(); !ok {
				t.Errorf("%s: probe without a deadline", tc.name)
			}
			calls++
			if calls <= tc.failures {
				return errors.New("connection reset")
			}
			return nil
		}}
		err := s.probeRelay(context.Background(), "127.0.0.1:1", keys.NodeID{})
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err %v", tc.name, err)
		}
		if want := min(tc.failures+1, probeAttempts); calls != want {
			t.Errorf("%s: %d attempts, want %d", tc.name, calls, want)
		}
	}
}
