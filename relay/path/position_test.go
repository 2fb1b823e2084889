package path

import (
	"fmt"
	"math"
	"testing"

	"veil/directory"
)

// loads returns the bandwidth each position is expected to carry with dw
// over es, and the total.
func loads(es []directory.Entry, dw drawWeights) (pos [numPositions]float64, total float64) {
	for _, e := range es {
		b := float64(weight(e, dw.limit))
		total += b
		for p := range numPositions {
			pos[p] += b * dw.w[p][classOf(e)]
		}
	}
	return pos, total
}

// TestPositionWeightsBalance: when capacity allows, each position carries
// a third of the total; when exits are scarce, exits serve only as exits
// and guard and middle share the rest; every relay's weights over the
// positions it may take add up to 1.
func TestPositionWeightsBalance(t *testing.T) {
	type mix struct{ guards, middles, exits, both int }
	for _, m := range []mix{
		{4, 2, 4, 0}, // Tor's case 1
		{3, 0, 0, 3}, // veil testnet: every relay a guard, half exits too
		{3, 3, 2, 1}, // exits exactly a third
		{5, 4, 1, 0}, // exits scarce
		{1, 4, 5, 0}, // guards scarce
		{1, 6, 1, 0}, // both scarce
		{2, 2, 2, 2},
	} {
		t.Run(fmt.Sprintf("%+v", m), func(t *testing.T) {
			var rs []relay
			add := func(n int, label string, flags directory.Flags) {
				for i := range n {
					rs = append(rs, relay{label: fmt.Sprint(label, i), addr: fmt.Sprintf("10.%d.0.1", len(rs)+1), flags: flags})
				}
			}
			add(m.guards, "g", guardFlags)
			add(m.middles, "m", middleFlags)
			add(m.exits, "e", exitFlags)
			add(m.both, "d", exitFlags|directory.FlagGuard)
			es := entries(t, rs...)
			dw := newDrawWeights(es)
			got, total := loads(es, dw)
			sum := 0.0
			for _, l := range got {
				sum += l
			}
			if math.Abs(sum-total) > 1 {
				t.Fatalf("positions carry %.0f of %.0f", sum, total)
			}
			third := total / 3
			exitCap := float64(m.exits+m.both) / float64(len(rs)) * total
			guardCap := float64(m.guards+m.both) / float64(len(rs)) * total
			switch {
			case exitCap >= third && guardCap >= third && exitCap+guardCap-float64(m.both)/float64(len(rs))*total >= 2*third:
				for p, l := range got {
					if math.Abs(l-third) > third*0.01 {
						t.Errorf("position %d carries %.0f, want a third, %.0f (weights %v)", p, l, third, dw.w)
					}
				}
			case exitCap < third:
				if got[posExit] < exitCap*0.99 {
					t.Errorf("exits scarce, but the exit position gets %.0f of their %.0f", got[posExit], exitCap)
				}
				if dw.w[posMiddle][classExit] != 0 || (m.both > 0 && dw.w[posMiddle][classBoth] != 0) {
					t.Errorf("exits scarce, but exit relays weigh %v in the middle", dw.w[posMiddle])
				}
			}
		})
	}
}
