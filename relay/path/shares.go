package path

import (
	"time"

	"veil/directory"
)

// Shares are the parts of each position's weight that some relays hold.
type Shares struct {
	// Guard is their part of the weight of a new guard's draw (the view's
	// Guard, Running and Valid relays at the guard position).
	Guard float64
	// Middle is their part of a middle's, or a vanguard's, draw (every
	// running relay at the middle position).
	Middle float64
	// Exit is their part of an exit's draw when every exit's policy
	// allows the destination (Exit relays at the exit position).
	Exit float64
}

// PositionShares returns the parts of each position's weight in v at now
// (SPEC.md §2.4) held by the relays that in accepts: the chance that a
// client's draw for that position picks one of them, before the rules of
// §2.2 strike candidates. cmd/veilsim compares what it measures with these.
func PositionShares(v *directory.View, now time.Time, in func(directory.Entry) bool) Shares {
	running := listed(v, flagsRunning, now)
	dw := newDrawWeights(running)
	var held, all [numPositions]float64
	for _, e := range running {
		for p, want := range [numPositions]directory.Flags{posGuard: flagsGuard, posMiddle: flagsRunning, posExit: flagsExit} {
			if e.Flags&want != want {
				continue
			}
			w := float64(dw.at(e, position(p)))
			all[p] += w
			if in(e) {
				held[p] += w
			}
		}
	}
	part := func(p position) float64 {
		if all[p] == 0 {
			return 0
		}
		return held[p] / all[p]
	}
	return Shares{Guard: part(posGuard), Middle: part(posMiddle), Exit: part(posExit)}
}
