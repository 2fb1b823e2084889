package path

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"veil/conf/exitpolicy"
	"veil/directory"
)

// network is three guards, three middles and three exits, each in its
// own /16.
func network(t *testing.T) *directory.View {
	return view(entries(t,
		relay{label: "g1", addr: "10.1.0.1", flags: guardFlags},
		relay{label: "g2", addr: "10.2.0.1", flags: guardFlags},
		relay{label: "g3", addr: "10.3.0.1", flags: guardFlags},
		relay{label: "m1", addr: "10.4.0.1", flags: middleFlags},
		relay{label: "m2", addr: "10.5.0.1", flags: middleFlags},
		relay{label: "m3", addr: "10.6.0.1", flags: middleFlags},
		relay{label: "e1", addr: "10.7.0.1", flags: exitFlags},
		relay{label: "e2", addr: "10.8.0.1", flags: exitFlags},
		relay{label: "e3", addr: "10.9.0.1", flags: exitFlags | directory.FlagGuard},
	)...)
}

var web = Destination{Addr: netip.MustParseAddr("93.184.215.14"), Port: 443}

func TestPathDistinctHops(t *testing.T) {
	v := network(t)
	s := newSelector(t, Options{})
	guard, err := s.Guard(v)
	if err != nil {
		t.Fatal(err)
	}
	seenExit, seenMiddle := map[string]bool{}, map[string]bool{}
	for range 300 {
		p, err := s.Path(v, web)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 3 {
			t.Fatalf("path of %d hops", len(p))
		}
		g, m, e := p[0], p[1], p[2]
		if !same(g, guard) {
			t.Fatalf("path starts at %s, guard is %s", labelOf(g), labelOf(guard))
		}
		if same(g, m) || same(m, e) || same(g, e) {
			t.Fatalf("hops not distinct: %s %s %s", labelOf(g), labelOf(m), labelOf(e))
		}
		if m.Flags&flagsRunning != flagsRunning || e.Flags&flagsExit != flagsExit {
			t.Fatalf("flags: middle %v, exit %v", m.Flags, e.Flags)
		}
		if !e.Descriptor.ExitPolicy().Allows(web.Addr, web.Port) {
			t.Fatalf("exit %s does not allow %s", labelOf(e), web)
		}
		seenMiddle[labelOf(m)] = true
		seenExit[labelOf(e)] = true
	}
	// Every exit and every relay may be drawn; over 300 draws each is.
	if len(seenExit) != 3 {
		t.Errorf("exits drawn: %v, want all three", seenExit)
	}
	// Exit capacity is a third of the total (e1, e2, e3 of nine equal
	// relays) and the guard-only relays balance the middle-only ones, so
	// the position weights (SPEC.md §2.4) keep exits and guards for their
	// own positions: every middle-only relay, and only those, in the middle.
	if len(seenMiddle) != 3 || !seenMiddle["m1"] || !seenMiddle["m2"] || !seenMiddle["m3"] {
		t.Errorf("middles drawn: %v, want m1, m2 and m3", seenMiddle)
	}
}

func TestSubnetRule(t *testing.T) {
	// All three in 127.0.0.0/16, as on a testnet.
	v := view(entries(t,
		relay{label: "g", addr: "127.0.0.1", flags: guardFlags},
		relay{label: "m", addr: "127.0.0.2", flags: middleFlags},
		relay{label: "e", addr: "127.0.0.3", flags: exitFlags},
	)...)
	s := newSelector(t, Options{})
	if _, err := s.Path(v, web); !errors.Is(err, ErrNoPath) {
		t.Fatalf("same /16 without AllowSameSubnet: %v, want ErrNoPath", err)
	}
	s = newSelector(t, Options{AllowSameSubnet: true})
	p, err := s.Path(v, web)
	if err != nil {
		t.Fatalf("AllowSameSubnet: %v", err)
	}
	if labelOf(p[0])+labelOf(p[1])+labelOf(p[2]) != "gme" {
		t.Fatalf("path %s %s %s", labelOf(p[0]), labelOf(p[1]), labelOf(p[2]))
	}

	// With other choices in other networks, the ones sharing the
	// guard's /16 are never used.
	v = view(entries(t,
		relay{label: "g", addr: "10.1.0.1", flags: guardFlags},
		relay{label: "mnear", addr: "10.1.200.2", flags: middleFlags},
		relay{label: "enear", addr: "10.1.99.3", flags: exitFlags},
		relay{label: "mfar", addr: "10.2.0.1", flags: middleFlags},
		relay{label: "efar", addr: "10.3.0.1", flags: exitFlags},
	)...)
	s = newSelector(t, Options{})
	for range 50 {
		p, err := s.Path(v, web)
		if err != nil {
			t.Fatal(err)
		}
		if labelOf(p[1]) != "mfar" || labelOf(p[2]) != "efar" {
			t.Fatalf("path %s %s %s shares the guard's /16", labelOf(p[0]), labelOf(p[1]), labelOf(p[2]))
		}
	}
}

func TestConflictIPv6(t *testing.T) {
	es := entries(t,
		relay{label: "a", addr: "2001:db8:1::1", flags: middleFlags},
		relay{label: "b", addr: "2001:db8:ffff::2", flags: middleFlags}, // same /32
		relay{label: "c", addr: "2001:db9::1", flags: middleFlags},
	)
	if got := conflict(es[0].Descriptor, es[1].Descriptor, false); got != "same /32" {
		t.Errorf("same /32: %q", got)
	}
	if got := conflict(es[0].Descriptor, es[1].Descriptor, true); got != "" {
		t.Errorf("same /32 allowed: %q", got)
	}
	if got := conflict(es[0].Descriptor, es[2].Descriptor, false); got != "" {
		t.Errorf("other /32: %q", got)
	}
	if got := conflict(es[0].Descriptor, es[0].Descriptor, true); got != "same relay" {
		t.Errorf("same relay: %q", got)
	}
}

func TestFamilyRule(t *testing.T) {
	// g and m declare each other; x names g, but g does not name x.
	v := view(entries(t,
		relay{label: "g", addr: "10.1.0.1", flags: guardFlags, family: []string{"m"}},
		relay{label: "m", addr: "10.2.0.1", flags: middleFlags, family: []string{"g"}},
		relay{label: "e", addr: "10.3.0.1", flags: exitFlags},
	)...)
	for _, sameSubnet := range []bool{false, true} {
		s := newSelector(t, Options{AllowSameSubnet: sameSubnet})
		if _, err := s.Path(v, web); !errors.Is(err, ErrNoPath) {
			t.Fatalf("AllowSameSubnet %v: guard and middle of one family: %v, want ErrNoPath", sameSubnet, err)
		}
	}

	v = view(append(v.Relays, entries(t,
		relay{label: "x", addr: "10.4.0.1", flags: middleFlags, family: []string{"g"}},
	)...)...)
	s := newSelector(t, Options{})
	for range 30 {
		p, err := s.Path(v, web)
		if err != nil {
			t.Fatal(err)
		}
		// A one-sided claim does not make a family (SPEC.md §2.2), so x
		// may serve; m, of g's family, may not.
		if labelOf(p[1]) != "x" {
			t.Fatalf("middle %s, want x", labelOf(p[1]))
		}
	}
}

func TestExitPolicy(t *testing.T) {
	https, err := exitpolicy.Parse([]string{"reject private:*", "accept *:443", "reject *:*"})
	if err != nil {
		t.Fatal(err)
	}
	v := view(entries(t,
		relay{label: "g", addr: "10.1.0.1", flags: guardFlags},
		relay{label: "m", addr: "10.2.0.1", flags: middleFlags},
		relay{label: "default", addr: "10.3.0.1", flags: exitFlags, policy: exitpolicy.Default()},
		relay{label: "loop", addr: "10.4.0.1", flags: exitFlags, policy: exitpolicy.LoopbackOnly()},
		relay{label: "https", addr: "10.5.0.1", flags: exitFlags, policy: https},
		// Has an open policy but no Exit flag: never an exit.
		relay{label: "noflag", addr: "10.6.0.1", flags: middleFlags, policy: exitpolicy.Default()},
	)...)
	addr := func(s string, port uint16) Destination {
		return Destination{Addr: netip.MustParseAddr(s), Port: port}
	}
	host := func(h string, port uint16) Destination { return Destination{Host: h, Port: port} }
	for _, tc := range []struct {
		dest Destination
		want []string // the exits that may serve; none means ErrNoExit
	}{
		{addr("93.184.215.14", 443), []string{"default", "https"}},
		{addr("93.184.215.14", 80), []string{"default"}},
		{addr("127.0.0.1", 80), []string{"loop"}},
		{addr("192.168.1.1", 443), nil},
		{addr("93.184.215.14", 25), nil},
		{addr("2001:db8::1", 443), []string{"default", "https"}},
		// Names: an exit that could allow the port serves; the exit checks
		// the address it resolves.
		{host("example.com", 443), []string{"default", "https", "loop"}},
		{host("example.com", 80), []string{"default", "loop"}},
		{host("localhost", 25), []string{"loop"}},
	} {
		s := newSelector(t, Options{})
		seen := map[string]bool{}
		for range 40 {
			p, err := s.Path(v, tc.dest)
			if tc.want == nil {
				if !errors.Is(err, ErrNoExit) {
					t.Fatalf("%s: %v, want ErrNoExit", tc.dest, err)
				}
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", tc.dest, err)
			}
			seen[labelOf(p[2])] = true
		}
		for _, w := range tc.want {
			if !seen[w] {
				t.Errorf("%s: exit %s never drawn (drew %v)", tc.dest, w, seen)
			}
		}
		if len(seen) > len(tc.want) {
			t.Errorf("%s: exits drawn %v, want only %v", tc.dest, seen, tc.want)
		}
	}
}

func TestAllowedByHost(t *testing.T) {
	for _, tc := range []struct {
		rules []string
		port  uint16
		want  bool
	}{
		{[]string{"accept *:443"}, 443, true},
		{[]string{"accept *:443"}, 80, false},
		{[]string{"reject *:443", "accept *:*"}, 443, false},
		{[]string{"reject *4:*", "reject *6:*", "accept *:*"}, 443, false},
		{[]string{"reject *4:*", "accept *:443"}, 443, true}, // IPv6 names may serve
		{[]string{"reject *4:*", "accept 1.2.3.0/24:443"}, 443, false},
		{[]string{"reject 1.2.3.4:*", "accept 1.2.3.0/24:443"}, 443, true},
		{[]string{"accept private:22"}, 22, true},
		{[]string{"accept 127.0.0.1:1-65535", "reject *:*"}, 8080, true},
		{nil, 443, false},
	} {
		p, err := exitpolicy.Parse(tc.rules)
		if err != nil {
			t.Fatal(err)
		}
		if got := allowedBy(p, Destination{Host: "example.com", Port: tc.port}); got != tc.want {
			t.Errorf("%q port %d: %v, want %v", tc.rules, tc.port, got, tc.want)
		}
	}
}

func TestBadDestination(t *testing.T) {
	s := newSelector(t, Options{})
	v := network(t)
	for _, d := range []Destination{
		{},
		{Host: "example.com"},
		{Addr: netip.MustParseAddr("1.2.3.4"), Host: "example.com", Port: 80},
	} {
		if _, err := s.Path(v, d); err == nil {
			t.Errorf("%+v: no error", d)
		}
	}
}

func TestNoExit(t *testing.T) {
	v := view(entries(t,
		relay{label: "g", addr: "10.1.0.1", flags: guardFlags},
		relay{label: "m1", addr: "10.2.0.1", flags: middleFlags},
		relay{label: "m2", addr: "10.3.0.1", flags: middleFlags},
		// An exit the seed did not flag Exit, and one not Running.
		relay{label: "e1", addr: "10.4.0.1", flags: middleFlags, policy: exitpolicy.Default()},
		relay{label: "e2", addr: "10.5.0.1", flags: directory.FlagExit | directory.FlagValid},
	)...)
	s := newSelector(t, Options{})
	_, err := s.Path(v, web)
	if !errors.Is(err, ErrNoExit) {
		t.Fatalf("%v, want ErrNoExit", err)
	}
	t.Log(err)
}

func TestTwoRelays(t *testing.T) {
	v := view(entries(t,
		relay{label: "g", addr: "10.1.0.1", flags: guardFlags},
		relay{label: "e", addr: "10.2.0.1", flags: exitFlags | directory.FlagGuard},
	)...)
	s := newSelector(t, Options{})
	for range 10 {
		_, err := s.Path(v, web)
		if !errors.Is(err, ErrNoPath) {
			t.Fatalf("%v, want ErrNoPath", err)
		}
	}
}

func TestNoGuardRelay(t *testing.T) {
	v := view(entries(t,
		relay{label: "m", addr: "10.1.0.1", flags: middleFlags},
		relay{label: "e", addr: "10.2.0.1", flags: exitFlags},
		relay{label: "x", addr: "10.3.0.1", flags: (middleFlags | directory.FlagGuard) &^ directory.FlagValid},
	)...)
	s := newSelector(t, Options{})
	if _, err := s.Path(v, web); !errors.Is(err, ErrNoGuard) {
		t.Fatalf("%v, want ErrNoGuard", err)
	}
}

func TestPathTo(t *testing.T) {
	v := view(entries(t,
		relay{label: "g1", addr: "10.1.0.1", flags: guardFlags},
		relay{label: "g2", addr: "10.2.0.1", flags: guardFlags},
		relay{label: "m", addr: "10.3.0.1", flags: middleFlags},
		relay{label: "s", addr: "10.4.0.1", flags: middleFlags | directory.FlagStorage},
		relay{label: "near", addr: "10.1.9.9", flags: middleFlags | directory.FlagStorage},
	)...)
	byLabel := map[string]directory.Entry{}
	for _, e := range v.Relays {
		byLabel[labelOf(e)] = e
	}
	s := newSelector(t, Options{})
	guard, err := s.Guard(v)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		p, err := s.PathTo(v, byLabel["s"])
		if err != nil {
			t.Fatal(err)
		}
		if !same(p[0], guard) || !same(p[2], byLabel["s"]) || same(p[1], p[0]) || same(p[1], p[2]) {
			t.Fatalf("path %s %s %s", labelOf(p[0]), labelOf(p[1]), labelOf(p[2]))
		}
	}

	// A last hop that is the guard itself, or in its /16, gets the next
	// guard, which is then kept.
	var last directory.Entry
	if labelOf(guard) == "g1" {
		last = byLabel["near"]
	} else {
		last = byLabel["g2"]
	}
	p, err := s.PathTo(v, last)
	if err != nil {
		t.Fatal(err)
	}
	if same(p[0], guard) || conflict(p[0].Descriptor, last.Descriptor, false) != "" {
		t.Fatalf("guard %s for last hop %s", labelOf(p[0]), labelOf(last))
	}
	if len(s.guards) != 2 {
		t.Fatalf("%d guards kept, want 2", len(s.guards))
	}
	// The first guard still serves other paths.
	if g, _ := s.Guard(v); !same(g, guard) {
		t.Fatalf("guard changed to %s", labelOf(g))
	}

	// A last hop missing from the view, or not running, is refused.
	gone := without(v, byLabel["s"])
	if _, err := s.PathTo(gone, byLabel["s"]); !errors.Is(err, ErrNoPath) {
		t.Fatalf("last hop not in view: %v, want ErrNoPath", err)
	}
	down := withFlags(v, byLabel["s"], directory.FlagValid)
	if _, err := s.PathTo(down, byLabel["s"]); !errors.Is(err, ErrNoPath) {
		t.Fatalf("last hop not running: %v, want ErrNoPath", err)
	}
	if _, err := s.PathTo(v, directory.Entry{}); !errors.Is(err, ErrNoPath) {
		t.Fatalf("no descriptor: %v, want ErrNoPath", err)
	}
}

func TestPathToNoMiddle(t *testing.T) {
	v := view(entries(t,
		relay{label: "g", addr: "10.1.0.1", flags: guardFlags},
		relay{label: "s", addr: "10.2.0.1", flags: middleFlags | directory.FlagStorage},
	)...)
	s := newSelector(t, Options{})
	if _, err := s.PathTo(v, v.Relays[0]); !errors.Is(err, ErrNoPath) {
		t.Fatalf("%v, want ErrNoPath", err)
	}
}

func TestExpiredDescriptorsSkipped(t *testing.T) {
	// A view may list descriptors that have expired; they are never used.
	v := network(t)
	late := t0.Add(directory.DefaultDescriptorLifetime + time.Second)
	s := newSelector(t, Options{Now: func() time.Time { return late }})
	if _, err := s.Path(v, web); !errors.Is(err, ErrNoGuard) {
		t.Fatalf("%v, want ErrNoGuard", err)
	}
}

func TestConcurrentPaths(t *testing.T) {
	v := network(t)
	s := newSelector(t, Options{DataDir: t.TempDir()})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if _, err := s.Path(v, web); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(s.guards) != 1 {
		t.Fatalf("%d guards after concurrent paths, want 1", len(s.guards))
	}
}

func TestNilView(t *testing.T) {
	s := newSelector(t, Options{})
	if _, err := s.Guard(nil); !errors.Is(err, ErrNoGuard) {
		t.Errorf("Guard: %v", err)
	}
	if _, err := s.Path(nil, web); !errors.Is(err, ErrNoGuard) {
		t.Errorf("Path: %v", err)
	}
	last := network(t).Relays[0]
	if _, err := s.PathTo(nil, last); !errors.Is(err, ErrNoPath) {
		t.Errorf("PathTo: %v", err)
	}
}

// TestGuardThatIsTheOnlyExit: a kept guard that is the only exit would
// fail every path; the next guard is used instead.
func TestGuardThatIsTheOnlyExit(t *testing.T) {
	es := entries(t,
		relay{label: "ge", addr: "10.1.0.1", flags: guardFlags | directory.FlagExit},
		relay{label: "g2", addr: "10.2.0.1", flags: guardFlags},
		relay{label: "m1", addr: "10.3.0.1", flags: middleFlags},
		relay{label: "m2", addr: "10.4.0.1", flags: middleFlags},
	)
	v := view(es...)
	dir := t.TempDir()
	if err := saveGuards(dir, []guardRecord{{ID: es[0].Descriptor.NodeID(), Chosen: t0}}); err != nil {
		t.Fatal(err)
	}
	s := newSelector(t, Options{DataDir: dir})
	p, err := s.Path(v, Destination{Addr: netip.MustParseAddr("93.184.215.14"), Port: 443})
	if err != nil {
		t.Fatal(err)
	}
	if labelOf(p[0]) == "ge" || labelOf(p[2]) != "ge" {
		t.Fatalf("path %s %s %s, want another guard and ge as the exit", labelOf(p[0]), labelOf(p[1]), labelOf(p[2]))
	}
}
