package seed

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"veil/conf/exitpolicy"
	"veil/directory"
	"veil/directory/internal/dirtest"
	"veil/onion/keys"
)

var t0 = dirtest.T0

// testRelay returns a signed, parsed descriptor of a relay at addr.
func testRelay(t testing.TB, label, addr string, roles directory.Roles, family ...keys.NodeID) (*keys.Identity, *directory.Descriptor) {
	t.Helper()
	id := dirtest.Identity(t, label)
	d := dirtest.Descriptor(t, id, label)
	d.Nickname = "r" + label
	d.ORAddr = netip.MustParseAddrPort(addr)
	d.GossipAddr = netip.MustParseAddrPort(addr)
	d.Roles = roles
	d.Bandwidth = 1 << 20
	d.Family = family
	if roles&directory.RoleExit != 0 {
		d.Policy = exitpolicy.LoopbackOnly()
	}
	if roles&directory.RoleStorage != 0 {
		d.StorageCapacity = 1 << 30
	}
	parsed, err := directory.ParseDescriptor(dirtest.Sign(t, id, d), t0)
	if err != nil {
		t.Fatal(err)
	}
	return id, parsed
}

// since is the history of a relay up without a break from start to t0.
func since(start time.Time) Stats {
	up := t0.Sub(start)
	return Stats{FirstSeen: start, Known: up, Fraction: 1, MTBF: up}
}

func flagsOf(entries []directory.Entry) map[keys.NodeID]directory.Flags {
	m := map[keys.NodeID]directory.Flags{}
	for _, e := range entries {
		m[e.Descriptor.NodeID()] = e.Flags
	}
	return m
}

func TestSelectFlags(t *testing.T) {
	_, exit := testRelay(t, "exit", "10.0.0.1:9001", directory.RoleExit|directory.RoleStorage)
	_, mid := testRelay(t, "mid", "10.1.0.1:9001", 0)
	_, fresh := testRelay(t, "fresh", "10.2.0.1:9001", 0)
	_, down := testRelay(t, "down", "10.3.0.1:9001", 0)
	pol := Admission{GuardMinUptime: 24 * time.Hour}
	entries, refused := Select([]Candidate{
		{Desc: exit, History: since(t0.Add(-48 * time.Hour)), ProbedOK: true},
		{Desc: mid, History: since(t0.Add(-2 * time.Hour)), ProbedOK: true},
		{Desc: fresh, History: since(t0.Add(-time.Minute)), ProbedOK: true},
		{Desc: down, History: since(t0.Add(-48 * time.Hour)), ProbedOK: false},
	}, pol, t0)
	if len(refused) != 0 {
		t.Fatalf("refused %v", refused)
	}
	f := flagsOf(entries)
	if _, ok := f[down.NodeID()]; ok {
		t.Fatal("a relay whose OR port did not answer was listed")
	}
	want := map[keys.NodeID]directory.Flags{
		exit.NodeID():  directory.FlagExit | directory.FlagStorage | directory.FlagGuard | directory.FlagStable | directory.FlagRunning | directory.FlagValid,
		mid.NodeID():   directory.FlagStable | directory.FlagRunning | directory.FlagValid,
		fresh.NodeID(): directory.FlagRunning | directory.FlagValid,
	}
	for id, w := range want {
		if f[id] != w {
			t.Errorf("%s: flags %v, want %v", id.Short(), f[id], w)
		}
	}
	// A testnet gives Guard at once, and asks no fraction of uptime.
	flaky := Stats{FirstSeen: t0, Fraction: 0.5}
	entries, _ = Select([]Candidate{{Desc: fresh, History: flaky, ProbedOK: true}}, Admission{GuardMinFraction: 0.98}, t0)
	if entries[0].Flags&directory.FlagGuard == 0 {
		t.Fatal("guard_min_uptime 0 did not give Guard at once")
	}
}

// TestSelectGuardNeedsHistory: Guard follows Tor's rule on the seed's
// history, whatever the current membership: known (weighted) for
// GuardMinUptime, up for GuardMinFraction of it, and Stable (weighted
// MTBF) too.
func TestSelectGuardNeedsHistory(t *testing.T) {
	_, d := testRelay(t, "r", "10.0.0.1:9001", 0)
	pol := Admission{GuardMinUptime: 96 * time.Hour, GuardMinFraction: 0.98}
	for _, tc := range []struct {
		name   string
		h      Stats
		guard  bool
		stable bool
	}{
		{"known long, always up", Stats{Known: 100 * time.Hour, Fraction: 1, MTBF: 100 * time.Hour}, true, true},
		{"known long, up 98%", Stats{Known: 100 * time.Hour, Fraction: 0.98, MTBF: 10 * time.Hour}, true, true},
		{"known long, up 90%", Stats{Known: 100 * time.Hour, Fraction: 0.90, MTBF: 10 * time.Hour}, false, true},
		{"known too briefly", Stats{Known: 95 * time.Hour, Fraction: 1, MTBF: 95 * time.Hour}, false, true},
		{"fails often", Stats{Known: 100 * time.Hour, Fraction: 0.99, MTBF: 30 * time.Minute}, false, false},
	} {
		entries, _ := Select([]Candidate{{Desc: d, History: tc.h, ProbedOK: true}}, pol, t0)
		f := entries[0].Flags
		if got := f&directory.FlagGuard != 0; got != tc.guard {
			t.Errorf("%s: Guard %v, want %v", tc.name, got, tc.guard)
		}
		if got := f&directory.FlagStable != 0; got != tc.stable {
			t.Errorf("%s: Stable %v, want %v", tc.name, got, tc.stable)
		}
	}
}

func TestSelectExpiredDescriptorNotListed(t *testing.T) {
	_, d := testRelay(t, "old", "10.0.0.1:9001", 0)
	entries, _ := Select([]Candidate{{Desc: d, History: since(t0), ProbedOK: true}}, Admission{}, d.Expires.Add(time.Second))
	if len(entries) != 0 {
		t.Fatal("an expired descriptor was listed")
	}
}

func TestSelectCaps(t *testing.T) {
	var cands []Candidate
	for i := 0; i < 5; i++ {
		_, d := testRelay(t, fmt.Sprint("net", i), fmt.Sprintf("10.7.%d.1:9001", i), 0)
		cands = append(cands, Candidate{Desc: d, History: since(t0.Add(-time.Duration(i+1) * time.Hour)), ProbedOK: true})
	}
	entries, refused := Select(cands, Admission{MaxPerSlash16: 3}, t0)
	f := flagsOf(entries)
	valid := 0
	for _, fl := range f {
		if fl&directory.FlagValid != 0 {
			valid++
		}
	}
	if len(entries) != 5 || valid != 3 || len(refused) != 2 || refused[0].Kind != RefusedSlash16 {
		t.Fatalf("%d listed, %d valid, %d refused (%v); want 5, 3, 2 for their /16", len(entries), valid, len(refused), refused)
	}
	// The longest-serving relays keep their place.
	for _, c := range cands[2:] {
		if f[c.Desc.NodeID()]&directory.FlagValid == 0 {
			t.Fatalf("long-serving relay %s lost Valid to a newcomer", c.Desc.Nickname)
		}
	}
}

func TestSelectFamilyNeedsMutualDeclaration(t *testing.T) {
	idA, _ := testRelay(t, "a", "10.1.0.1:9001", 0)
	idB, _ := testRelay(t, "b", "10.2.0.1:9001", 0)
	idC, _ := testRelay(t, "c", "10.3.0.1:9001", 0)
	_, a := testRelay(t, "a", "10.1.0.1:9001", 0, idB.ID(), idC.ID())
	_, b := testRelay(t, "b", "10.2.0.1:9001", 0, idA.ID())
	// C does not name A: naming C does not pull it into A's family.
	_, c := testRelay(t, "c", "10.3.0.1:9001", 0)
	cands := []Candidate{
		{Desc: a, History: since(t0.Add(-3 * time.Hour)), ProbedOK: true},
		{Desc: b, History: since(t0.Add(-2 * time.Hour)), ProbedOK: true},
		{Desc: c, History: since(t0.Add(-1 * time.Hour)), ProbedOK: true},
	}
	entries, refused := Select(cands, Admission{MaxPerFamily: 1}, t0)
	f := flagsOf(entries)
	if f[a.NodeID()]&directory.FlagValid == 0 || f[b.NodeID()]&directory.FlagValid != 0 || f[c.NodeID()]&directory.FlagValid == 0 {
		t.Fatalf("family cap: a=%v b=%v c=%v (refused %v)", f[a.NodeID()], f[b.NodeID()], f[c.NodeID()], refused)
	}
}

func TestSelectAllowlist(t *testing.T) {
	idA, a := testRelay(t, "a", "10.1.0.1:9001", 0)
	_, b := testRelay(t, "b", "10.2.0.1:9001", 0)
	entries, refused := Select([]Candidate{{Desc: a, History: since(t0), ProbedOK: true}, {Desc: b, History: since(t0), ProbedOK: true}},
		Admission{Allowlist: map[keys.NodeID]bool{idA.ID(): true}}, t0)
	f := flagsOf(entries)
	if f[a.NodeID()]&directory.FlagValid == 0 || f[b.NodeID()]&directory.FlagValid != 0 || len(refused) != 1 || refused[0].Kind != RefusedAllowlist {
		t.Fatalf("allowlist: a=%v b=%v refused=%v", f[a.NodeID()], f[b.NodeID()], refused)
	}
}

// TestSelectKeepsOneEntryPerIdentity: two members carrying one identity
// (under two gossip names) give one entry, the newest descriptor, and a
// refusal; the same pair in the other order gives the same choice.
func TestSelectKeepsOneEntryPerIdentity(t *testing.T) {
	id, a := testRelay(t, "twin", "10.0.0.1:9001", 0)
	_, other := testRelay(t, "other", "10.1.0.1:9001", 0)
	d := dirtest.Descriptor(t, id, "twin")
	d.Nickname, d.GossipName = "rtwin", "second-name"
	d.ORAddr = netip.MustParseAddrPort("10.0.0.1:9001")
	d.GossipAddr = netip.MustParseAddrPort("10.0.0.1:9002")
	d.Bandwidth = 1 << 20
	d.Sequence = a.Sequence + 1
	b, err := directory.ParseDescriptor(dirtest.Sign(t, id, d), t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, order := range [][]*directory.Descriptor{{a, b}, {b, a}} {
		cands := []Candidate{{Desc: other, History: since(t0.Add(-time.Hour)), ProbedOK: true}}
		for _, d := range order {
			cands = append(cands, Candidate{Desc: d, History: since(t0.Add(-time.Hour)), ProbedOK: true})
		}
		entries, refused := Select(cands, Admission{}, t0)
		if len(entries) != 2 {
			t.Fatalf("%d entries, want 2 (one per identity)", len(entries))
		}
		for _, e := range entries {
			if e.Descriptor.NodeID() == id.ID() && e.Descriptor.Sequence != b.Sequence {
				t.Fatalf("kept sequence %d, want the newest, %d", e.Descriptor.Sequence, b.Sequence)
			}
		}
		if len(refused) != 1 || refused[0].ID != id.ID() || refused[0].Kind != RefusedDuplicate {
			t.Fatalf("refused %v, want the twin's older member", refused)
		}
		c := &directory.Consensus{ValidAfter: t0, FreshUntil: t0.Add(time.Hour), ValidUntil: t0.Add(3 * time.Hour), Relays: entries}
		if _, err := c.Sign(dirtest.Identity(t, "seed")); err != nil {
			t.Fatalf("sign: %v", err)
		}
	}
}

// TestSignableDropsWhatCannotBeSigned: an entry the consensus could not
// carry (here an Exit flag on a relay that offers no exit, or a node ID
// twice) is dropped and the rest signs.
func TestSignableDropsWhatCannotBeSigned(t *testing.T) {
	_, a := testRelay(t, "a", "10.0.0.1:9001", 0)
	_, b := testRelay(t, "b", "10.1.0.1:9001", 0)
	entries := []directory.Entry{{Flags: directory.FlagRunning, Descriptor: a}, {Flags: directory.FlagRunning | directory.FlagExit, Descriptor: b}}
	if ai, bi := a.NodeID(), b.NodeID(); string(ai[:]) > string(bi[:]) {
		entries[0], entries[1] = entries[1], entries[0]
	}
	entries = append(entries, entries[len(entries)-1])
	kept, dropped := signable(entries)
	if len(kept) != 1 || kept[0].Descriptor != a || len(dropped) != 2 {
		t.Fatalf("kept %d, dropped %v", len(kept), dropped)
	}
}
