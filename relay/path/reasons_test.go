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
		{"no relay", nil, ErrNoGuard, "the consensus lists no running relay"},
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

// TestMarksForgivenWhenNoPathIsLeft: relays the client failed to reach are
// passed over for UnreachableFor, but when that leaves no path (three
// relays restarted at once, on a network of three) they are tried again
// at once instead of refusing every circuit for 30 s (issue 16 item 1:
// the first circuit after a relay restart took 36 s).
func TestMarksForgivenWhenNoPathIsLeft(t *testing.T) {
	es := entries(t,
		relay{label: "g", addr: "10.1.0.1", flags: guardFlags},
		relay{label: "m", addr: "10.3.0.1", flags: middleFlags},
		relay{label: "e", addr: "10.2.0.1", flags: exitFlags},
	)
	v := view(es...)
	s := newSelector(t, Options{})
	if _, err := s.Path(v, web); err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		s.Unreachable(e.Descriptor.NodeID())
	}
	p, err := s.Path(v, web)
	if err != nil {
		t.Fatalf("every relay marked unreachable: %v, want the marks forgiven", err)
	}
	if len(p) != pathLen {
		t.Fatalf("%d hops", len(p))
	}
}
