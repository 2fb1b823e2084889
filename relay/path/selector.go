package path

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"veil/directory"
	"veil/onion/keys"
)

const (
	// DefaultGuardLifetime is how long a guard is kept when Options does
	// not say: conf's client guard_lifetime default. Changing guards often
	// exposes a client to more of them, and so to a hostile one sooner.
	// 60 days is Tor's confirmed-guard lifetime; with guards living 90–100 %
	// of it, a client keeps one guard through its first 30 days, which
	// veilsim's 30-day compromise target needs (relay/path/SPEC.md §4).
	DefaultGuardLifetime = 60 * 24 * time.Hour
	// DefaultGuardDownLimit is how long a guard may stay unusable (absent
	// from the view, or listed without Guard, Running or Valid) before it
	// is dropped for good when Options does not say. A relay that
	// restarts, or misses a consensus or two, comes back within hours;
	// a week tells a retired relay from a blip without letting anyone
	// who can knock a guard offline for a while make the client rotate.
	DefaultGuardDownLimit = 7 * 24 * time.Hour
	// MaxGuards bounds the guards a client keeps, in preference order
	// (Tor's three primary guards). While the first is down the next
	// usable one serves; only when all are down or unsuitable and the
	// list is full does Guard fail with ErrNoGuard rather than reach for
	// ever more relays, which is what an attacker who can take guards
	// offline would want.
	MaxGuards = 3
)

// Options configure a Selector. The zero value is usable: guards are
// kept in memory only, with the default lifetime, crypto/rand and the
// system clock.
type Options struct {
	// DataDir holds the guard file (GuardFile); "" keeps guards in
	// memory only, for tests and one-shot tools.
	DataDir string
	// GuardLifetime is how long a guard is kept after it was chosen
	// (conf client guard_lifetime); 0 means DefaultGuardLifetime.
	GuardLifetime time.Duration
	// GuardDownLimit is how long a guard may stay unusable before it is
	// dropped; 0 means DefaultGuardDownLimit.
	GuardDownLimit time.Duration
	// AllowSameSubnet lifts the rule that no two hops share a /16 (IPv6
	// /32), for testnets whose relays all listen on 127.0.0.1. Hops are
	// still distinct and never of one family.
	AllowSameSubnet bool
	// Rand is the source of every random choice; nil means crypto/rand.
	// Guard choice must be unpredictable to others, so set it only in
	// tests.
	Rand io.Reader
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives guard changes; nil means silent.
	Logger *slog.Logger
	// NoVanguards makes PathTo draw a fresh middle for every circuit, as
	// before vanguards (SPEC.md §3). Only cmd/veilsim sets it, to show
	// what vanguards buy; a client never should.
	NoVanguards bool
}

// Selector chooses the relays of circuits. Its methods are safe for
// concurrent use.
type Selector struct {
	dir          string
	lifetime     time.Duration
	downLimit    time.Duration
	sameSubnetOK bool
	noVanguards  bool
	now          func() time.Time
	log          *slog.Logger

	mu     sync.Mutex // guards the following fields
	rand   io.Reader
	guards []guardRecord // in preference order, at most MaxGuards
	dirty  bool          // guards differ from the file
	// vanguards are the second hops of PathTo circuits (SPEC.md §3), at
	// most NumVanguards; vdirty says they differ from their file.
	vanguards []vanguardRecord
	vdirty    bool
	// bias is the path-bias record of each kept or disabled guard
	// (SPEC.md §1.3, pathbias.go).
	bias biasBook

	umu sync.Mutex // guards unreachable and reported; taken after mu, never before
	// unreachable holds relays the client could not reach, until when it
	// leaves them alone; the consensus lags a relay that just died.
	unreachable map[keys.NodeID]time.Time
	// reported holds, by guard, the relays circuits through that guard
	// could not reach, until when (UnreachableVia).
	reported map[keys.NodeID]map[keys.NodeID]time.Time
}

// UnreachableFor is how long a relay the client could not reach is passed
// over, as if the view listed it as down.
const UnreachableFor = 30 * time.Second

// Unreachable tells the selector that the client could not reach relay
// id: for UnreachableFor it is not chosen as a middle or exit, and if it
// is a guard the next kept guard serves, as when the view stops listing it.
func (s *Selector) Unreachable(id keys.NodeID) {
	s.umu.Lock()
	defer s.umu.Unlock()
	if s.unreachable == nil {
		s.unreachable = map[keys.NodeID]time.Time{}
	}
	s.unreachable[id] = s.now().Add(UnreachableFor)
}

// reachable reports whether id is not marked unreachable at now.
func (s *Selector) reachable(id keys.NodeID, now time.Time) bool {
	s.umu.Lock()
	defer s.umu.Unlock()
	return !now.Before(s.unreachable[id])
}

// reachableNow returns reachable at this moment as a test of descriptors,
// for a draw over many candidates: with no relay marked (the usual case)
// it hashes no key into a node ID.
func (s *Selector) reachableNow() func(*directory.Descriptor) bool {
	now := s.now()
	s.umu.Lock()
	marked := make(map[keys.NodeID]time.Time, len(s.unreachable))
	for id, until := range s.unreachable {
		if now.Before(until) {
			marked[id] = until
		} else {
			delete(s.unreachable, id) // so the map stays small
		}
	}
	s.umu.Unlock()
	if len(marked) == 0 {
		return func(*directory.Descriptor) bool { return true }
	}
	return func(d *directory.Descriptor) bool {
		_, ok := marked[d.NodeID()]
		return !ok
	}
}

// NewSelector returns a Selector with opts, loading the guards kept in
// opts.DataDir. A guard file that does not parse is an error, not a reason
// to choose new guards silently.
func NewSelector(opts Options) (*Selector, error) {
	if opts.GuardLifetime < 0 {
		return nil, fmt.Errorf("path: guard lifetime %v is negative", opts.GuardLifetime)
	}
	if opts.GuardDownLimit < 0 {
		return nil, fmt.Errorf("path: guard down limit %v is negative", opts.GuardDownLimit)
	}
	s := &Selector{
		dir:          opts.DataDir,
		lifetime:     opts.GuardLifetime,
		downLimit:    opts.GuardDownLimit,
		sameSubnetOK: opts.AllowSameSubnet,
		noVanguards:  opts.NoVanguards,
		now:          opts.Now,
		log:          opts.Logger,
		rand:         opts.Rand,
	}
	if s.lifetime == 0 {
		s.lifetime = DefaultGuardLifetime
	}
	if s.downLimit == 0 {
		s.downLimit = DefaultGuardDownLimit
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.dir != "" {
		g, err := loadGuards(s.dir)
		if err != nil {
			return nil, err
		}
		s.guards = g
		vg, err := loadVanguards(s.dir)
		if err != nil {
			return nil, err
		}
		s.vanguards = vg
		b, ids, err := loadBias(s.dir)
		if err != nil {
			return nil, err
		}
		s.bias.load(b, ids)
	}
	return s, nil
}

// Guard returns the client's guard in v: the first kept guard that v
// lists as Guard, Running and Valid with a descriptor valid now. Kept
// guards past their lifetime, or unusable for longer than the down limit,
// are dropped; one that is merely missing now stays kept, and the next
// kept guard serves meanwhile. When no kept guard is usable, Guard chooses
// a new one among v's Guard relays, weighted by bandwidth, and writes it to
// the guard file before returning it. It fails with ErrNoGuard.
func (s *Selector) Guard(v *directory.View) (directory.Entry, error) {
	g, err := s.guard(v, s.now(), nil)
	if err != nil {
		return directory.Entry{}, fmt.Errorf("path: guard: %w", err)
	}
	return g, nil
}

// Path returns [guard, middle, exit] for a circuit to dest: the guard from
// Guard, an exit with Exit, Running and Valid whose policy allows dest, and
// a middle with Running and Valid, drawn weighted by bandwidth so that no
// two hops are the same relay, in one /16 (IPv6 /32, unless
// AllowSameSubnet) or of one family (SPEC.md §2). It fails with ErrNoGuard,
// ErrNoExit when no exit allows dest, or ErrNoPath when no exit and middle
// fit together with the guard.
func (s *Selector) Path(v *directory.View, dest Destination) ([]directory.Entry, error) {
	if err := dest.check(); err != nil {
		return nil, err
	}
	p, err := s.pathPastStopped(v, dest)
	if err != nil && s.forgiveUnreachable() {
		return s.pathPastStopped(v, dest)
	}
	return p, err
}

// pathPastStopped is path, drawn again while the guard drawn is stopped
// for path bias.
func (s *Selector) pathPastStopped(v *directory.View, dest Destination) ([]directory.Entry, error) {
	// A draw may count enough circuits against the guard to stop it
	// (§1.3); the next kept guard then serves.
	for range MaxGuards {
		p, err := s.path(v, dest)
		if !errors.Is(err, errGuardStopped) {
			return p, err
		}
	}
	return nil, fmt.Errorf("path: path to the destination: %w", errorf(ErrNoGuard, "no usable guard: %d guards stopped for path bias in one draw", MaxGuards))
}

// forgiveUnreachable forgets every relay marked Unreachable and reports
// whether there was one. Path calls it when no path is left: the marks
// are a preference for relays that answered, not a reason to refuse
// every circuit. On a small network, relays restarted at once were all
// marked, and for UnreachableFor (30 s) after they were back no circuit
// was built (issue 16 item 1: 36 s to the first circuit); a relay that
// is still down fails its dial again and is marked again.
func (s *Selector) forgiveUnreachable() bool {
	now := s.now()
	s.umu.Lock()
	marked := 0
	for _, until := range s.unreachable {
		if now.Before(until) {
			marked++
		}
	}
	clear(s.unreachable)
	s.umu.Unlock()
	if marked > 0 {
		s.log.Info("path: no path without the relays that could not be reached lately; trying them again", "relays", marked, "marked_for", UnreachableFor)
	}
	return marked > 0
}

// oneOperatorNet reports whether every relay of es is in one /16 (IPv6
// /32), the network no two hops may share (SPEC.md §2.2).
func oneOperatorNet(es []directory.Entry) bool {
	for _, e := range es[1:] {
		if directory.OperatorNet(e.Descriptor.ORAddr.Addr()) != directory.OperatorNet(es[0].Descriptor.ORAddr.Addr()) {
			return false
		}
	}
	return len(es) > 0
}

// pathLen is how many relays a circuit from Path has: guard, middle and
// exit, all different.
const pathLen = 3

// errGuardStopped says the guard of a path being drawn was stopped for path
// bias meanwhile: draw again.
var errGuardStopped = errors.New("path: guard stopped for path bias")

func (s *Selector) path(v *directory.View, dest Destination) ([]directory.Entry, error) {
	fail := func(err error) ([]directory.Entry, error) {
		// The destination stays out of the error, which ends up in
		// logs (relay/socks/SPEC.md: logs never name a destination).
		return nil, fmt.Errorf("path: path to the destination: %w", err)
	}
	now := s.now()
	noPath := func(format string, args ...any) ([]directory.Entry, error) {
		// A network of two relays has a guard and an exit but no
		// path: say so rather than which middle was missing.
		running := s.draws(v, now).running
		if n := len(running); n < pathLen {
			return fail(errorf(ErrNoPath, "no path: the consensus lists %d running relays, and a circuit needs %d", n, pathLen))
		}
		if !s.sameSubnetOK && oneOperatorNet(running) {
			return fail(errorf(ErrNoPath, "no path: every running relay is in %s, and no two hops may share one (a network on one machine needs local_testnet = true)",
				directory.OperatorNet(running[0].Descriptor.ORAddr.Addr())))
		}
		return fail(errorf(ErrNoPath, format, args...))
	}
	guard, err := s.guard(v, now, nil)
	if err != nil {
		return fail(err)
	}
	ds := s.draws(v, now)
	exits := ds.exitsFor(dest)
	if len(exits) == 0 {
		if len(listedIn(ds.running, flagsExit)) == 0 {
			return fail(errorf(ErrNoExitRelay, "no exit allows it: the consensus lists no running relay with the Exit flag (a relay needs exit = true)"))
		}
		return fail(errorf(ErrNoExit, "no exit allows it: no running exit's policy accepts it"))
	}
	allowing := exits
	exits = s.fits(allowing, guard)
	if len(exits) == 0 {
		// A guard that is the only exit (or its neighbour) would fail
		// this destination for good: use the next kept guard that
		// leaves an exit, choosing one if needed.
		if g, err := s.guard(v, now, func(g directory.Entry) bool { return len(s.fits(allowing, g)) > 0 }); err == nil {
			guard, exits = g, s.fits(allowing, g)
		}
	}
	if len(exits) == 0 {
		return noPath("no path: every exit that allows it conflicts with guard %s", name(guard))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	via := s.reportedVia(guard.Descriptor.NodeID(), now)
	// Draw an exit, then a middle that fits both; an exit that leaves no
	// middle is struck and another drawn, so small networks still work.
	for len(exits) > 0 {
		exit, err := pick(s.rand, exits, ds.dw, posExit)
		if err != nil {
			return fail(err)
		}
		if via.reported(exit.Descriptor) {
			// As for middles (Selector.middle): the circuit the guard
			// said would fail counts against it.
			s.countLocked(guard.Descriptor.NodeID(), now, circuitFailed)
			exits = strike(exits, exit)
			continue
		}
		middle, found, err := s.middle(ds, via, guard, exit)
		if err != nil {
			return fail(err)
		}
		if s.disabledLocked(guard.Descriptor.NodeID(), now) {
			return nil, errGuardStopped
		}
		if !found {
			exits = strike(exits, exit)
			continue
		}
		return []directory.Entry{guard, middle, exit}, nil
	}
	if s.disabledLocked(guard.Descriptor.NodeID(), now) {
		return nil, errGuardStopped
	}
	return noPath("no path: no middle relay fits guard %s and any exit that allows it", name(guard))
}

// PathTo returns [guard, middle, last] for a circuit whose last hop is
// fixed, such as a storage relay holding a shard. last must be listed in v
// as Running and Valid with a descriptor valid now; the view's entry is
// used. The guard is the first kept guard that fits last, so a client
// whose guard is last itself (or its neighbour or family) uses its next
// guard, choosing and keeping one if needed. It fails with ErrNoGuard or
// ErrNoPath.
func (s *Selector) PathTo(v *directory.View, last directory.Entry) ([]directory.Entry, error) {
	for range MaxGuards {
		p, err := s.pathTo(v, last)
		if !errors.Is(err, errGuardStopped) {
			return p, err
		}
	}
	return nil, fmt.Errorf("path: path to a relay: %w", errorf(ErrNoGuard, "no usable guard: %d guards stopped for path bias in one draw", MaxGuards))
}

func (s *Selector) pathTo(v *directory.View, last directory.Entry) ([]directory.Entry, error) {
	if last.Descriptor == nil {
		return nil, fmt.Errorf("path: path to a relay: %w", errorf(ErrNoPath, "no path: no descriptor"))
	}
	fail := func(err error) ([]directory.Entry, error) {
		return nil, fmt.Errorf("path: path to %s: %w", name(last), err)
	}
	if v == nil {
		return fail(errorf(ErrNoPath, "no path: no view of the network"))
	}
	now := s.now()
	e, ok := v.ByID(last.Descriptor.NodeID())
	if !ok || !has(e, flagsRunning, now) {
		return fail(errorf(ErrNoPath, "no path: the relay is not running in the view"))
	}
	last = e
	guard, err := s.guard(v, now, func(g directory.Entry) bool {
		return conflict(g.Descriptor, last.Descriptor, s.sameSubnetOK) == ""
	})
	if err != nil {
		return fail(err)
	}
	ds := s.draws(v, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	gid := guard.Descriptor.NodeID()
	via := s.reportedVia(gid, now)
	if !s.noVanguards {
		// The middle is one of the client's vanguards (SPEC.md §3),
		// chosen uniformly among those that fit; one the guard said it
		// could not reach counts against the guard, as the circuit
		// would have, and another is drawn.
		vg, err := s.vanguardsLocked(v, now, ds)
		if err != nil {
			return fail(err)
		}
		middles := s.fits(vg, guard, last)
		for len(middles) > 0 {
			i, err := uniform(s.rand, uint64(len(middles)))
			if err != nil {
				return fail(err)
			}
			if !via.reported(middles[i].Descriptor) {
				return []directory.Entry{guard, middles[i], last}, nil
			}
			s.countLocked(gid, now, circuitFailed)
			if s.disabledLocked(gid, now) {
				return nil, errGuardStopped
			}
			middles = strike(middles, middles[i])
		}
		s.log.Debug("path: no vanguard fits; drawing a fresh middle", "guard", name(guard), "last", name(last))
	}
	middle, found, err := s.middle(ds, via, guard, last)
	if err != nil {
		return fail(err)
	}
	if s.disabledLocked(gid, now) {
		return nil, errGuardStopped
	}
	if !found {
		return fail(errorf(ErrNoPath, "no path: no middle relay fits guard %s and it", name(guard)))
	}
	return []directory.Entry{guard, middle, last}, nil
}

// listed returns v's entries with flags want and a descriptor valid at now.
func listed(v *directory.View, want directory.Flags, now time.Time) []directory.Entry {
	var out []directory.Entry
	for _, e := range v.Relays {
		if has(e, want, now) {
			out = append(out, e)
		}
	}
	return out
}

// middle draws a middle that fits hops (hops[0] the guard) at the middle
// position's weights, as pick over s.fits(ds.running, hops...) would
// (cumulative.drawExcept), and reports false when none fits. A relay drawn
// that the guard said it could not reach (via) is drawn again, and counts a
// failed circuit against the guard: the one that would have been built
// (SPEC.md §1.3). s.mu must be held.
func (s *Selector) middle(ds *drawSet, via reported, hops ...directory.Entry) (directory.Entry, bool, error) {
	reachable := s.reachableNow()
	rules := make([]hopRule, len(hops))
	for i, h := range hops {
		rules[i] = newHopRule(h.Descriptor)
	}
	now := s.now()
	gid := hops[0].Descriptor.NodeID()
	skip := func(c directory.Entry, drawn bool) bool {
		if !reachable(c.Descriptor) {
			return true
		}
		net := directory.OperatorNet(c.Descriptor.ORAddr.Addr())
		for _, r := range rules {
			if r.conflict(c.Descriptor, net, s.sameSubnetOK) != "" {
				return true
			}
		}
		if via.reported(c.Descriptor) {
			if drawn {
				s.countLocked(gid, now, circuitFailed)
			}
			return true
		}
		return false
	}
	return ds.middles.drawExcept(s.rand, ds.dw, posMiddle, skip)
}

// listedIn returns the entries of es that carry every flag in want.
func listedIn(es []directory.Entry, want directory.Flags) []directory.Entry {
	var out []directory.Entry
	for _, e := range es {
		if e.Flags&want == want {
			out = append(out, e)
		}
	}
	return out
}

// fits returns the entries of cands that may share a circuit with every
// hop and are not marked unreachable.
func (s *Selector) fits(cands []directory.Entry, hops ...directory.Entry) []directory.Entry {
	out := make([]directory.Entry, 0, len(cands))
	reachable := s.reachableNow()
	rules := make([]hopRule, len(hops))
	for i, h := range hops {
		rules[i] = newHopRule(h.Descriptor)
	}
next:
	for _, c := range cands {
		if !reachable(c.Descriptor) {
			continue
		}
		net := directory.OperatorNet(c.Descriptor.ORAddr.Addr())
		for _, r := range rules {
			if r.conflict(c.Descriptor, net, s.sameSubnetOK) != "" {
				continue next
			}
		}
		out = append(out, c)
	}
	return out
}

// strike returns cands without e.
func strike(cands []directory.Entry, e directory.Entry) []directory.Entry {
	id := e.Descriptor.NodeID()
	out := cands[:0:0]
	for _, c := range cands {
		if c.Descriptor.NodeID() != id {
			out = append(out, c)
		}
	}
	return out
}

// name names a relay in messages: nickname and short node ID.
func name(e directory.Entry) string {
	return e.Descriptor.Nickname + "~" + e.Descriptor.NodeID().Short()
}
