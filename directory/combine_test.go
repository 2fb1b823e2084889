package directory

import (
	"errors"
	"strings"
	"testing"
	"time"

	"veil/onion/keys"
)

// network is three pinned seeds and five relays that the honest seeds list
// with the same flags.
type network struct {
	seeds  []*keys.Identity
	pinned []keys.NodeID
	relays []relay
}

func newNetwork(t *testing.T) *network {
	n := &network{relays: testRelays(t, 4, true)}
	for _, l := range []string{"seed A", "seed B", "seed C"} {
		s := testIdentity(t, l)
		n.seeds = append(n.seeds, s)
		n.pinned = append(n.pinned, s.ID())
	}
	return n
}

// honest returns the entries every honest seed signs.
func (n *network) honest() []Entry {
	es := entries(n.relays, running|FlagStable)
	es[0].Flags |= FlagGuard
	es[len(es)-1].Flags |= FlagExit | FlagStorage
	return es
}

func (n *network) doc(t *testing.T, seed int, es []Entry) *Consensus {
	return newConsensus(t, n.seeds[seed], es...)
}

func (n *network) agreeing(t *testing.T) []*Consensus {
	return []*Consensus{n.doc(t, 0, n.honest()), n.doc(t, 1, n.honest()), n.doc(t, 2, n.honest())}
}

// sameEntries compares a view's relays with the honest list.
func sameEntries(t *testing.T, got, want []Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d relays, want %d", len(got), len(want))
	}
	byID := map[keys.NodeID]Entry{}
	for _, e := range want {
		byID[e.Descriptor.NodeID()] = e
	}
	for _, e := range got {
		w, ok := byID[e.Descriptor.NodeID()]
		if !ok || w.Flags != e.Flags || w.Descriptor.Digest() != e.Descriptor.Digest() {
			t.Fatalf("relay %s: flags %s, want %s (listed %v)", e.Descriptor.NodeID().Short(), e.Flags, w.Flags, ok)
		}
	}
}

func TestCombineAgreeing(t *testing.T) {
	n := newNetwork(t)
	v, err := Combine(n.agreeing(t), n.pinned, t0)
	if err != nil {
		t.Fatal(err)
	}
	sameEntries(t, v.Relays, n.honest())
	if len(v.Seeds) != 3 || len(v.Refused) != 0 {
		t.Fatalf("%d seeds counted, refused %v", len(v.Seeds), v.Refused)
	}
	if !v.ValidAfter.Equal(t0) || !v.FreshUntil.Equal(t0.Add(time.Minute)) || !v.ValidUntil.Equal(t0.Add(DefaultConsensusLifetime)) {
		t.Fatalf("times %s %s %s", v.ValidAfter, v.FreshUntil, v.ValidUntil)
	}
	for _, r := range n.relays {
		if e, ok := v.ByID(r.id.ID()); !ok || e.Descriptor.Digest() != r.d.Digest() {
			t.Fatalf("ByID(%s) = %v", r.id.ID().Short(), ok)
		}
	}
	if _, ok := v.ByID(keys.NodeID{}); ok {
		t.Fatal("ByID found an unknown relay")
	}
}

func TestCombineLiarAddsRelay(t *testing.T) {
	n := newNetwork(t)
	sybil := newRelay(t, "sybil")
	docs := n.agreeing(t)
	docs[2] = n.doc(t, 2, append(n.honest(), Entry{Flags: running | FlagGuard, Descriptor: sybil.d}))
	v, err := Combine(docs, n.pinned, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v.ByID(sybil.id.ID()); ok {
		t.Fatal("a relay only the lying seed lists is in the view")
	}
	sameEntries(t, v.Relays, n.honest())
}

func TestCombineLiarOmitsRelay(t *testing.T) {
	n := newNetwork(t)
	docs := n.agreeing(t)
	docs[2] = n.doc(t, 2, n.honest()[1:])
	v, err := Combine(docs, n.pinned, t0)
	if err != nil {
		t.Fatal(err)
	}
	sameEntries(t, v.Relays, n.honest())
}

func TestCombineLiarChangesDescriptor(t *testing.T) {
	n := newNetwork(t)
	victim := n.relays[1]
	// The relay really did sign this other descriptor (say, an older one
	// with a different address), but the majority lists the current one.
	other := newDescriptor(t, victim.id, "1")
	other.Contact = "an older descriptor"
	signed(t, victim.id, other)
	lie := n.honest()
	for i := range lie {
		if lie[i].Descriptor == victim.d {
			lie[i].Descriptor = other
		}
	}
	docs := n.agreeing(t)
	docs[0] = n.doc(t, 0, lie)
	v, err := Combine(docs, n.pinned, t0)
	if err != nil {
		t.Fatal(err)
	}
	sameEntries(t, v.Relays, n.honest())
	if e, _ := v.ByID(victim.id.ID()); e.Descriptor.Digest() != victim.d.Digest() {
		t.Fatal("the lying seed's descriptor won")
	}

	// If two seeds disagree with each other and with the third, no
	// descriptor has a majority and the relay is left out.
	other2 := newDescriptor(t, victim.id, "1")
	other2.Contact = "yet another"
	signed(t, victim.id, other2)
	lie2 := n.honest()
	for i := range lie2 {
		if lie2[i].Descriptor == victim.d {
			lie2[i].Descriptor = other2
		}
	}
	docs[1] = n.doc(t, 1, lie2)
	v, err = Combine(docs, n.pinned, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v.ByID(victim.id.ID()); ok || len(v.Relays) != len(n.relays)-1 {
		t.Fatal("a relay without a majority descriptor is in the view")
	}
}

func TestCombineLiarFlipsFlags(t *testing.T) {
	n := newNetwork(t)
	lie := n.honest()
	for i := range lie {
		lie[i].Flags ^= FlagGuard | FlagRunning | FlagStable
	}
	docs := n.agreeing(t)
	docs[1] = n.doc(t, 1, lie)
	v, err := Combine(docs, n.pinned, t0)
	if err != nil {
		t.Fatal(err)
	}
	sameEntries(t, v.Relays, n.honest())

	// Flags are counted flag by flag against the pinned majority: with
	// one seed silent, a flag needs both remaining seeds.
	v, err = Combine(docs[:2], n.pinned, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range v.Relays {
		if e.Flags&(FlagGuard|FlagRunning|FlagStable) != 0 || e.Flags&FlagValid == 0 {
			t.Fatalf("relay %s: flags %s", e.Descriptor.NodeID().Short(), e.Flags)
		}
	}
}

func TestCombineUnpinned(t *testing.T) {
	n := newNetwork(t)
	stranger := testIdentity(t, "stranger")
	docs := n.agreeing(t)
	docs[2] = newConsensus(t, stranger, n.honest()...)
	v, err := Combine(docs, n.pinned, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Seeds) != 2 || len(v.Refused) != 1 || !errors.Is(v.Refused[0], ErrUnpinned) ||
		!strings.Contains(v.Refused[0].Error(), stranger.ID().String()) {
		t.Fatalf("seeds %d, refused %v", len(v.Seeds), v.Refused)
	}
	sameEntries(t, v.Relays, n.honest())

	// The stranger cannot stand in for a missing pinned seed.
	_, err = Combine([]*Consensus{docs[0], docs[2]}, n.pinned, t0)
	if !errors.Is(err, ErrNoMajority) || !errors.Is(err, ErrUnpinned) {
		t.Fatalf("one pinned seed and a stranger: %v", err)
	}
}

func TestCombineRefusesBadTimes(t *testing.T) {
	n := newNetwork(t)
	docs := n.agreeing(t)
	expired := &Consensus{ValidAfter: t0.Add(-4 * time.Hour), FreshUntil: t0.Add(-4*time.Hour + time.Minute), ValidUntil: t0.Add(-time.Hour)}
	expired.Relays = n.honest()
	if _, err := expired.Sign(n.seeds[2]); err != nil {
		t.Fatal(err)
	}
	future := &Consensus{ValidAfter: t0.Add(time.Hour), FreshUntil: t0.Add(time.Hour + time.Minute), ValidUntil: t0.Add(2 * time.Hour)}
	if _, err := future.Sign(n.seeds[2]); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		doc  *Consensus
		want error
	}{"expired": {expired, ErrExpired}, "future": {future, ErrFromFuture}} {
		v, err := Combine([]*Consensus{docs[0], docs[1], tc.doc}, n.pinned, t0)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Seeds) != 2 || len(v.Refused) != 1 || !errors.Is(v.Refused[0], tc.want) {
			t.Fatalf("%s: seeds %d, refused %v", name, len(v.Seeds), v.Refused)
		}
	}
}

func TestCombineSilentSeeds(t *testing.T) {
	n := newNetwork(t)
	docs := n.agreeing(t)
	_, err := Combine(docs[:1], n.pinned, t0)
	if !errors.Is(err, ErrNoMajority) || !strings.Contains(err.Error(), "1 of 3") {
		t.Fatalf("one of three seeds: %v", err)
	}
	if _, err := Combine(nil, n.pinned, t0); !errors.Is(err, ErrNoMajority) {
		t.Fatalf("no documents: %v", err)
	}
	if _, err := Combine(docs, nil, t0); !errors.Is(err, ErrNoMajority) {
		t.Fatalf("nothing pinned: %v", err)
	}
	// A document that was never signed or parsed does not count.
	if _, err := Combine([]*Consensus{docs[0], {SeedKey: docs[1].SeedKey}}, n.pinned, t0); !errors.Is(err, ErrNoMajority) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("unsigned document: %v", err)
	}
}

func TestCombineReplayedConsensus(t *testing.T) {
	n := newNetwork(t)
	docs := n.agreeing(t)
	// Yesterday's documents, replayed after their valid-until.
	later := t0.Add(DefaultConsensusLifetime + time.Second)
	_, err := Combine(docs, n.pinned, later)
	if !errors.Is(err, ErrNoMajority) || !errors.Is(err, ErrExpired) {
		t.Fatalf("replayed documents: %v", err)
	}
	// One seed's document given three times counts once.
	_, err = Combine([]*Consensus{docs[0], docs[0], docs[0]}, n.pinned, t0)
	if !errors.Is(err, ErrNoMajority) {
		t.Fatalf("one document three times: %v", err)
	}
}

func TestCombineNewestPerSeed(t *testing.T) {
	n := newNetwork(t)
	docs := n.agreeing(t)
	// Seed A's next document drops relay 0; its older one still lists it.
	next := &Consensus{ValidAfter: t0.Add(time.Minute), FreshUntil: t0.Add(2 * time.Minute), ValidUntil: t0.Add(time.Hour), Relays: n.honest()[1:]}
	if _, err := next.Sign(n.seeds[0]); err != nil {
		t.Fatal(err)
	}
	for _, order := range [][]*Consensus{{docs[0], next, docs[1]}, {next, docs[0], docs[1]}} {
		v, err := Combine(order, n.pinned, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Seeds) != 2 || len(v.Relays) != len(n.relays)-1 {
			t.Fatalf("seeds %d, relays %d: the older document counted", len(v.Seeds), len(v.Relays))
		}
		// Times: the latest valid-after, the earliest fresh- and valid-until.
		if !v.ValidAfter.Equal(next.ValidAfter) || !v.FreshUntil.Equal(docs[1].FreshUntil) || !v.ValidUntil.Equal(next.ValidUntil) {
			t.Fatalf("times %s %s %s", v.ValidAfter, v.FreshUntil, v.ValidUntil)
		}
	}
}

func TestCombineEquivocation(t *testing.T) {
	n := newNetwork(t)
	docs := n.agreeing(t)
	twin := n.doc(t, 0, n.honest()[1:]) // same valid-after as docs[0]
	v, err := Combine([]*Consensus{docs[0], twin, docs[1], docs[2]}, n.pinned, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Seeds) != 2 || len(v.Refused) != 1 || !errors.Is(v.Refused[0], ErrEquivocation) {
		t.Fatalf("seeds %d, refused %v", len(v.Seeds), v.Refused)
	}
	sameEntries(t, v.Relays, n.honest())
}

func TestCombinePinnedTwice(t *testing.T) {
	n := newNetwork(t)
	docs := n.agreeing(t)
	pinned := append([]keys.NodeID{n.pinned[0]}, n.pinned...)
	// Four entries but three seeds: two documents are a majority.
	if _, err := Combine(docs[:2], pinned, t0); err != nil {
		t.Fatal(err)
	}
}

func TestViewUsable(t *testing.T) {
	n := newNetwork(t)
	short := newDescriptor(t, n.relays[0].id, "0")
	short.Sequence = 2
	short.Expires = t0.Add(time.Hour)
	signed(t, n.relays[0].id, short)
	es := n.honest()
	for i := range es {
		if es[i].Descriptor == n.relays[0].d {
			es[i].Descriptor = short
		}
	}
	docs := []*Consensus{n.doc(t, 0, es), n.doc(t, 1, es), n.doc(t, 2, es)}
	v, err := Combine(docs, n.pinned, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Relays) != len(n.relays) || len(v.Usable(t0.Add(2*time.Hour))) != len(n.relays)-1 {
		t.Fatal("an expired descriptor is usable")
	}
}

// TestCombineWeightIsTheMedian: each seed measures every relay; one seed
// lies high and another reports nothing, and the view carries the median,
// the honest figure.
func TestCombineWeightIsTheMedian(t *testing.T) {
	n := newNetwork(t)
	docs := make([]*Consensus, 3)
	for i, w := range []uint32{1000, 1 << 30, 0} {
		es := n.honest()
		for j := range es {
			es[j].Weight = w
		}
		// Through the wire, so that the weight's encoding is tested too.
		parsed, err := ParseConsensus(n.doc(t, i, es).Bytes())
		if err != nil {
			t.Fatal(err)
		}
		docs[i] = parsed
	}
	v, err := Combine(docs, n.pinned, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range v.Relays {
		if e.Weight != 1000 {
			t.Fatalf("relay %s: weight %d, want the median 1000", e.Descriptor.NodeID().Short(), e.Weight)
		}
	}
	// Two documents of three: the lower of the two.
	v, err = Combine(docs[:2], n.pinned, t0)
	if err != nil {
		t.Fatal(err)
	}
	if w := v.Relays[0].Weight; w != 1000 {
		t.Fatalf("weight %d from two seeds, want the lower, 1000", w)
	}
}
