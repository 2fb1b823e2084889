package path

import (
	"io"
	"sort"
	"sync"
	"time"

	"veil/directory"
)

// drawSet is what the draws from one view at one time need: its running
// relays, their weights at each position, and running sums of those
// weights for draws by binary search. Computing it sorts every relay's
// bandwidth (weightCap), so it is kept for as long as it stays exact: for
// the same view, until some descriptor expires or becomes valid. A share
// of 100 MB builds about 1,500 circuits from one view.
type drawSet struct {
	v *directory.View
	// from and until are Unix seconds: the set is exact for a time t
	// with from <= t < until.
	from, until int64
	running     []directory.Entry
	dw          drawWeights
	// middles are the running relays at the middle position, guards the
	// running Guard relays at the guard position.
	middles, guards cumulative

	mu    sync.Mutex // guards exits
	exits map[Destination][]directory.Entry
}

// maxExitLists bounds drawSet.exits: the destinations whose exits are
// kept, forgotten all at once when full (G9).
const maxExitLists = 64

// cumulative is candidates with running sums of their weights at one
// position: sums[i] is the weight of es[0] to es[i].
type cumulative struct {
	es   []directory.Entry
	sums []uint64
}

func newCumulative(es []directory.Entry, dw drawWeights, p position) cumulative {
	c := cumulative{es: es, sums: make([]uint64, len(es))}
	var sum uint64
	for i, e := range es {
		sum += dw.at(e, p)
		c.sums[i] = sum
	}
	return c
}

// draw returns a candidate with probability proportional to its weight,
// as pick over c.es does, and false when they all weigh 0 (pick would
// fall back to bandwidth alone) or there are none.
func (c cumulative) draw(rand io.Reader) (directory.Entry, bool, error) {
	if len(c.sums) == 0 || c.sums[len(c.sums)-1] == 0 {
		return directory.Entry{}, false, nil
	}
	r, err := uniform(rand, c.sums[len(c.sums)-1])
	if err != nil {
		return directory.Entry{}, false, err
	}
	return c.es[sort.Search(len(c.sums), func(i int) bool { return r < c.sums[i] })], true, nil
}

// drawExcept draws one of c.es that skip does not reject, as pick over the
// accepted ones would. It draws from all of them and again while skip
// rejects the result: conditioned on acceptance, each accepted candidate
// comes with the same chance, and skip, which may hash a key, runs on a
// few candidates instead of all. After maxRejects rejections, or when
// every candidate weighs 0, it filters and calls pick, which also covers
// accepted candidates that all weigh 0 at p. skip is told whether the
// candidate was drawn (true) or is being filtered (false). It returns
// false if skip rejects every candidate.
func (c cumulative) drawExcept(rand io.Reader, dw drawWeights, p position, skip func(e directory.Entry, drawn bool) bool) (directory.Entry, bool, error) {
	for range maxRejects {
		e, ok, err := c.draw(rand)
		if err != nil {
			return directory.Entry{}, false, err
		}
		if !ok {
			break
		}
		if !skip(e, true) {
			return e, true, nil
		}
	}
	var accepted []directory.Entry
	for _, e := range c.es {
		if !skip(e, false) {
			accepted = append(accepted, e)
		}
	}
	if len(accepted) == 0 {
		return directory.Entry{}, false, nil
	}
	e, err := pick(rand, accepted, dw, p)
	return e, err == nil, err
}

// maxRejects is how many draws drawExcept makes before it filters.
const maxRejects = 16

// exitsFor returns the running exits whose policy allows dest (SPEC.md
// §2.3), kept for the destinations last asked.
func (ds *drawSet) exitsFor(dest Destination) []directory.Entry {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if exits, ok := ds.exits[dest]; ok {
		return exits
	}
	var exits []directory.Entry
	for _, e := range ds.running {
		if e.Flags&flagsExit == flagsExit && e.Descriptor.Roles&directory.RoleExit != 0 && allowedBy(e.Descriptor.Policy, dest) {
			exits = append(exits, e)
		}
	}
	if len(ds.exits) >= maxExitLists {
		ds.exits = nil
	}
	if ds.exits == nil {
		ds.exits = map[Destination][]directory.Entry{}
	}
	ds.exits[dest] = exits
	return exits
}

// lastDraws is the drawSet last computed, for any Selector: it depends on
// the view and the time only, and is exact whenever it is used, so
// selectors may share it (a process has one, or in cmd/veilsim thousands
// over one view). A view must not change once drawn from; none does.
var lastDraws struct {
	sync.Mutex
	set *drawSet
}

// draws returns the drawSet of v at now, computing it if the last one
// was for another view or time.
func (s *Selector) draws(v *directory.View, now time.Time) *drawSet {
	t := now.Unix()
	lastDraws.Lock()
	c := lastDraws.set
	lastDraws.Unlock()
	if c != nil && c.v == v && c.from <= t && t < c.until {
		return c
	}
	c = &drawSet{v: v, from: t, until: changesAfter(v, flagsRunning, t)}
	c.running = listed(v, flagsRunning, now)
	c.dw = newDrawWeights(c.running)
	c.middles = newCumulative(c.running, c.dw, posMiddle)
	c.guards = newCumulative(listedIn(c.running, flagsGuard), c.dw, posGuard)
	lastDraws.Lock()
	lastDraws.set = c
	lastDraws.Unlock()
	return c
}

// changesAfter returns the first second after t at which some entry of v
// with flags want changes whether has accepts it: a valid descriptor
// expires (Descriptor.CheckTime accepts t up to Expires) or one from the
// future becomes valid (from Published less directory.ClockSkew).
func changesAfter(v *directory.View, want directory.Flags, t int64) int64 {
	until := int64(1<<63 - 1)
	skew := int64(directory.ClockSkew / time.Second)
	for _, e := range v.Relays {
		if e.Flags&want != want || e.Descriptor == nil {
			continue
		}
		pub, exp := e.Descriptor.Published.Unix(), e.Descriptor.Expires.Unix()
		switch {
		case pub > t+skew: // not yet valid
			until = min(until, pub-skew)
		case t <= exp: // valid now
			until = min(until, exp+1)
		}
	}
	return until
}
