package path

import (
	"crypto/rand"
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
	DefaultGuardLifetime = 30 * 24 * time.Hour
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
}

// Selector chooses the relays of circuits. Its methods are safe for
// concurrent use.
type Selector struct {
	dir          string
	lifetime     time.Duration
	downLimit    time.Duration
	sameSubnetOK bool
	now          func() time.Time
	log          *slog.Logger

	mu     sync.Mutex // guards the following fields
	rand   io.Reader
	guards []guardRecord // in preference order, at most MaxGuards
	dirty  bool          // guards differ from the file

	umu sync.Mutex // guards unreachable; taken after mu, never before
	// unreachable holds relays the client could not reach, until when it
	// leaves them alone; the consensus lags a relay that just died.
	unreachable map[keys.NodeID]time.Time
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
	fail := func(err error) ([]directory.Entry, error) {
		return nil, fmt.Errorf("path: path to %s: %w", dest, err)
	}
	now := s.now()
	guard, err := s.guard(v, now, nil)
	if err != nil {
		return fail(err)
	}
	running := listed(v, flagsRunning, now)
	dw := newDrawWeights(running)
	var exits []directory.Entry
	for _, e := range running {
		if has(e, flagsExit, now) && allowedBy(e.Descriptor.ExitPolicy(), dest) {
			exits = append(exits, e)
		}
	}
	if len(exits) == 0 {
		return fail(errorf(ErrNoExit, "no exit allows it"))
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
		return fail(errorf(ErrNoPath, "no path: every exit that allows it conflicts with guard %s", name(guard)))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Draw an exit, then a middle that fits both; an exit that leaves no
	// middle is struck and another drawn, so small networks still work.
	for len(exits) > 0 {
		exit, err := pick(s.rand, exits, dw, posExit)
		if err != nil {
			return fail(err)
		}
		middles := s.fits(running, guard, exit)
		if len(middles) == 0 {
			exits = strike(exits, exit)
			continue
		}
		middle, err := pick(s.rand, middles, dw, posMiddle)
		if err != nil {
			return fail(err)
		}
		return []directory.Entry{guard, middle, exit}, nil
	}
	return fail(errorf(ErrNoPath, "no path: no middle relay fits guard %s and any exit that allows it", name(guard)))
}

// PathTo returns [guard, middle, last] for a circuit whose last hop is
// fixed, such as a storage relay holding a shard. last must be listed in v
// as Running and Valid with a descriptor valid now; the view's entry is
// used. The guard is the first kept guard that fits last, so a client
// whose guard is last itself (or its neighbour or family) uses its next
// guard, choosing and keeping one if needed. It fails with ErrNoGuard or
// ErrNoPath.
func (s *Selector) PathTo(v *directory.View, last directory.Entry) ([]directory.Entry, error) {
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
	running := listed(v, flagsRunning, now)
	middles := s.fits(running, guard, last)
	if len(middles) == 0 {
		return fail(errorf(ErrNoPath, "no path: no middle relay fits guard %s and it", name(guard)))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	middle, err := pick(s.rand, middles, newDrawWeights(running), posMiddle)
	if err != nil {
		return fail(err)
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

// fits returns the entries of cands that may share a circuit with every
// hop.
func (s *Selector) fits(cands []directory.Entry, hops ...directory.Entry) []directory.Entry {
	var out []directory.Entry
	now := s.now()
next:
	for _, c := range cands {
		if !s.reachable(c.Descriptor.NodeID(), now) {
			continue
		}
		for _, h := range hops {
			if conflict(c.Descriptor, h.Descriptor, s.sameSubnetOK) != "" {
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
