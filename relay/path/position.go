package path

import "veil/directory"

// Position weights, after Tor's bandwidth-weights (dir-spec §3.8.3),
// simplified (SPEC.md §2.4). Every circuit uses one guard, one middle and
// one exit, so each position should carry a third of the traffic. A relay
// with the Exit flag can serve only as exit or middle, one with Guard only
// as guard or middle, so when exit (or guard) capacity is scarce, relays
// that could fill it must not be spent on the middle: weighting by
// bandwidth alone, a network with few exits would put a third of its
// middles on them and run out of exit capacity first.

// position is where on a path a relay is drawn for.
type position int

const (
	posGuard position = iota
	posMiddle
	posExit
	numPositions
)

// class is a relay's kind for the weights: which of Guard and Exit it has.
type class int

const (
	classMiddle class = iota // neither flag
	classGuard               // Guard, not Exit
	classExit                // Exit, not Guard
	classBoth                // Guard and Exit
	numClasses
)

func classOf(e directory.Entry) class {
	g := e.Flags&directory.FlagGuard != 0
	x := e.Flags&directory.FlagExit != 0
	switch {
	case g && x:
		return classBoth
	case g:
		return classGuard
	case x:
		return classExit
	}
	return classMiddle
}

// drawWeights is everything a weighted draw needs from the view: the cap
// on one relay's bandwidth and the weight of each class at each position.
type drawWeights struct {
	limit uint64
	w     [numPositions][numClasses]float64
}

// newDrawWeights computes the weights from the running relays of a view.
// With G, M, E, D the capped bandwidth of the guard-only, neither,
// exit-only and guard-and-exit relays, T their sum and t = T/3:
//  1. the exit position takes t if it can: exit-only relays first (Wee =
//     min(1, t/E)), then guard-and-exit relays for the rest (Wed);
//  2. the guard position takes half of what is left, r/2, the same way:
//     guard-only relays first (Wgg), then what remains of the
//     guard-and-exit relays (Wgd);
//  3. the middle takes the rest of every relay (Wme = 1−Wee, Wmg = 1−Wgg,
//     Wmd = 1−Wed−Wgd, Wmm = 1).
//
// Where capacity allows, each position then carries T/3, which is what
// Tor's case 1 gives; when exits are scarce, every exit is only an exit and
// guard and middle share the rest equally, as Tor's scarce cases do.
func newDrawWeights(running []directory.Entry) drawWeights {
	dw := drawWeights{limit: weightCap(running)}
	var sum [numClasses]float64
	for _, e := range running {
		sum[classOf(e)] += float64(weight(e, dw.limit))
	}
	M, G, E, D := sum[classMiddle], sum[classGuard], sum[classExit], sum[classBoth]
	T := M + G + E + D
	w := &dw.w
	if T == 0 {
		for p := range w {
			for c := range w[p] {
				w[p][c] = 1
			}
		}
		return dw
	}
	// take gives a position up to want from relays of bandwidth have that
	// are still free (share of each), and returns the weight used.
	take := func(want, have, free float64) float64 {
		if have <= 0 || want <= 0 {
			return 0
		}
		return min(want/have, free)
	}
	t := T / 3
	wee := take(t, E, 1)
	wed := take(t-E*wee, D, 1)
	r := T - E*wee - D*wed
	wgg := take(r/2, G, 1)
	wgd := take(r/2-G*wgg, D, 1-wed)
	w[posExit][classExit], w[posExit][classBoth] = wee, wed
	w[posGuard][classGuard], w[posGuard][classBoth] = wgg, wgd
	w[posMiddle][classMiddle] = 1
	w[posMiddle][classExit] = 1 - wee
	w[posMiddle][classGuard] = 1 - wgg
	w[posMiddle][classBoth] = max(1-wed-wgd, 0)
	// A kind with no capacity still has weight 1 in its own position, so
	// that such a relay that appears between two views is drawn at all.
	if E == 0 {
		w[posExit][classExit] = 1
	}
	if G == 0 {
		w[posGuard][classGuard] = 1
	}
	return dw
}

// at is e's weight in a draw for position p: its capped bandwidth times
// its class's weight there.
func (dw drawWeights) at(e directory.Entry, p position) uint64 {
	return uint64(float64(weight(e, dw.limit)) * dw.w[p][classOf(e)])
}
