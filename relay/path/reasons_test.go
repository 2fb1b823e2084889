package path

import (
	"errors"
	"strings"
	"testing"
)

// TestNoCircuitReasons checks that the errors a client logs when it can
// build no circuit name the cause an operator can fix: too few relays, no
// Guard flag, no Exit flag (issue 16 item 1).
func TestNoCircuitReasons(t *testing.T) {
	cases := []struct {
		name   string
		relays []relay
		kind   error
		says   string
	}{
		{"two relays", []relay{
			{label: "g", addr: "10.1.0.1", flags: guardFlags},
			{label: "e", addr: "10.2.0.1", flags: exitFlags},
		}, ErrNoPath, "the consensus lists 2 running relays, and a circuit needs 3"},
		{"no guard flag", []relay{
			{label: "m", addr: "10.1.0.1", flags: middleFlags},
			{label: "n", addr: "10.3.0.1", flags: middleFlags},
			{label: "e", addr: "10.2.0.1", flags: exitFlags},
		}, ErrNoGuard, "the consensus lists 3 running relays and none has the Guard flag"},
		{"no exit flag", []relay{
			{label: "g", addr: "10.1.0.1", flags: guardFlags},
			{label: "m", addr: "10.3.0.1", flags: middleFlags},
			{label: "n", addr: "10.2.0.1", flags: middleFlags},
		}, ErrNoExitRelay, "no running relay with the Exit flag"},
		{"one /16 without local_testnet", []relay{
			{label: "g", addr: "10.1.0.1", flags: guardFlags},
			{label: "m", addr: "10.1.0.2", flags: middleFlags},
			{label: "e", addr: "10.1.0.3", flags: exitFlags},
		}, ErrNoPath, "every running relay is in 10.1.0.0/16"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := view(entries(t, c.relays...)...)
			_, err := newSelector(t, Options{}).Path(v, web)
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("%v, want %v saying %q", err, c.kind, c.says)
			}
		})
	}
}
