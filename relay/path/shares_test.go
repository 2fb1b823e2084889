package path

import (
	"math"
	"testing"

	"veil/directory"
)

// TestPositionSharesMatchDraws: the parts PositionShares reports are what
// the draws give.
func TestPositionSharesMatchDraws(t *testing.T) {
	v := view(entries(t,
		relay{label: "g1", addr: "10.1.0.1", flags: guardFlags, bw: 30 << 20},
		relay{label: "g2", addr: "10.2.0.1", flags: guardFlags, bw: 10 << 20},
		relay{label: "m1", addr: "10.3.0.1", flags: middleFlags, bw: 20 << 20},
		relay{label: "m2", addr: "10.4.0.1", flags: middleFlags, bw: 20 << 20},
		relay{label: "e1", addr: "10.5.0.1", flags: exitFlags, bw: 15 << 20},
		relay{label: "e2", addr: "10.6.0.1", flags: exitFlags, bw: 5 << 20},
	)...)
	in := func(e directory.Entry) bool { l := labelOf(e); return l == "g2" || l == "m1" || l == "e2" }
	sh := PositionShares(v, t0, in)
	dw := newDrawWeights(listed(v, flagsRunning, t0))
	part := func(p position, want directory.Flags) float64 {
		var held, all float64
		for _, e := range listed(v, want, t0) {
			w := float64(dw.at(e, p))
			all += w
			if in(e) {
				held += w
			}
		}
		return held / all
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"guard", sh.Guard, part(posGuard, flagsGuard)},
		{"middle", sh.Middle, part(posMiddle, flagsRunning)},
		{"exit", sh.Exit, part(posExit, flagsExit)},
	} {
		if math.Abs(c.got-c.want) > 1e-12 || c.got <= 0 || c.got >= 1 {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	// Guard draws follow it: g2 holds a quarter of the guard weight.
	if math.Abs(sh.Guard-0.25) > 1e-9 {
		t.Errorf("guard share %v, want 0.25", sh.Guard)
	}
}
