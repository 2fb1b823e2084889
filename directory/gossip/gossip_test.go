package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// converge is the deadline for membership plus descriptor fetch among a
// handful of nodes with Fast timing, and for every other wait here; it
// takes well under a second normally. It detects a hang, never measures
// speed: a loaded two-core machine under the race detector must pass.
const converge = 2 * time.Minute

// cluster starts a seed and n nodes joined to it and waits until every node
// holds every other's descriptor.
func cluster(t *testing.T, n int) []*Node {
	t.Helper()
	seed := start(t, testConfig("seed", 1))
	nodes := []*Node{seed}
	for i := range n {
		nodes = append(nodes, start(t, testConfig(fmt.Sprintf("n%d", i), 1, seed.Addr().String())))
	}
	waitConverged(t, nodes, converge)
	return nodes
}

func waitConverged(t *testing.T, nodes []*Node, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "every node to hold every descriptor", func() bool {
		for _, a := range nodes {
			for _, b := range nodes {
				if a != b && !hasDescriptor(a, b.Name(), fakeDescriptor(b.Name(), 1)) {
					return false
				}
			}
		}
		return true
	})
}

func TestConverge(t *testing.T) {
	checkLeaks(t)
	begin := time.Now()
	nodes := cluster(t, 5)
	t.Logf("6 nodes converged in %v", time.Since(begin))
	for _, n := range nodes {
		ms := n.Members()
		if len(ms) != len(nodes)-1 {
			t.Fatalf("%s lists %d members, want %d", n.Name(), len(ms), len(nodes)-1)
		}
		for _, m := range ms {
			if m.Name == n.Name() {
				t.Errorf("%s lists itself", n.Name())
			}
			if m.Since.IsZero() || !m.Addr.IsValid() || m.Pointer.Seq != 1 || m.Pointer.Key != m.Name {
				t.Errorf("%s: member %+v", n.Name(), m)
			}
		}
	}
}

func TestRefuseBadPointer(t *testing.T) {
	checkLeaks(t)
	var v countingVerifier
	seedCfg := testConfig("seed", 1)
	seedCfg.VerifyPointer, seedCfg.VerifyDescriptor = v.pointer, v.descriptor
	seed := start(t, seedCfg)
	aCfg := testConfig("a", 1, seed.Addr().String())
	aCfg.VerifyPointer, aCfg.VerifyDescriptor = v.pointer, v.descriptor
	a := start(t, aCfg)

	// "evil" publishes a pointer made for "a": it does not bind its own
	// name. Its own verifiers are lax so that it can start.
	evilCfg := testConfig("evil", 1, seed.Addr().String())
	desc := fakeDescriptor("a", 7)
	evilCfg.Pointer, evilCfg.Descriptor = fakePointer("a", 7, desc), desc
	evilCfg.VerifyPointer, evilCfg.VerifyDescriptor = laxPointer, laxDescriptor
	evil := start(t, evilCfg)

	waitConverged(t, []*Node{seed, a}, converge)
	// evil's join went through (it lists the seed) and the seed refused it.
	waitFor(t, converge, "evil to reach the seed and be refused", func() bool {
		_, ok := member(evil, "seed")
		return ok && v.refusals("evil") > 0
	})
	// Full state exchanges, which would spread evil if anyone had admitted
	// it: a with the seed, and evil pushing its own alive state to a.
	if _, err := a.ml.Join([]string{seed.Addr().String()}); err != nil {
		t.Fatal(err)
	}
	if _, err := evil.ml.Join([]string{a.Addr().String()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, converge, "a to refuse evil too", func() bool { return v.refusals("evil") >= 2 })
	for _, n := range []*Node{seed, a} {
		if _, ok := member(n, "evil"); ok {
			t.Errorf("%s admitted a node whose pointer does not verify", n.Name())
		}
		if len(n.Members()) != 1 {
			t.Errorf("%s: members %v", n.Name(), n.Members())
		}
	}
}

func TestRefuseBadDescriptor(t *testing.T) {
	checkLeaks(t)
	var v countingVerifier
	seedCfg := testConfig("seed", 1)
	seedCfg.VerifyPointer, seedCfg.VerifyDescriptor = v.pointer, v.descriptor
	seed := start(t, seedCfg)

	// "liar" has a valid pointer but serves a descriptor that does not
	// match it.
	liarCfg := testConfig("liar", 1, seed.Addr().String())
	liarCfg.Descriptor = []byte("some other descriptor")
	liarCfg.VerifyDescriptor = laxDescriptor
	liar := start(t, liarCfg)

	waitFor(t, converge, "the seed to refuse the descriptor twice", func() bool {
		return v.descFail.Load() >= 2
	})
	m, ok := member(seed, "liar")
	if !ok {
		t.Fatal("seed does not list liar: its pointer is valid")
	}
	if m.Descriptor != nil {
		t.Errorf("seed stored a descriptor that does not match the pointer: %q", m.Descriptor)
	}
	if !hasDescriptor(liar, "seed", fakeDescriptor("seed", 1)) {
		waitFor(t, converge, "liar to get the seed's descriptor", func() bool {
			return hasDescriptor(liar, "seed", fakeDescriptor("seed", 1))
		})
	}
}

func TestLeaveAndCrash(t *testing.T) {
	checkLeaks(t)
	nodes := cluster(t, 3)
	seed, a, b, c := nodes[0], nodes[1], nodes[2], nodes[3]
	for _, n := range nodes {
		for len(n.Events()) > 0 {
			<-n.Events()
		}
	}
	suspMin, suspMax := Fast().SuspicionTimeout(len(nodes))

	// Graceful: b leaves but keeps running, so it still answers probes and
	// failure detection cannot remove it: if the others drop it, the leave
	// message did. Timings are logged, not asserted (see the benchmark).
	begin := time.Now()
	if err := b.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, seed, EventLeave, b.Name(), converge)
	waitEvent(t, a, EventLeave, b.Name(), converge)
	t.Logf("leave seen by two members after %v (suspicion timeout %v)", time.Since(begin), suspMin)
	if _, ok := member(seed, b.Name()); ok {
		t.Error("seed still lists a member that left")
	}
	if _, err := b.ml.Join([]string{seed.Addr().String()}); err != nil {
		t.Fatalf("a node that left stopped answering: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Leave after Close: %v, want ErrClosed", err)
	}

	// Crash: Close without Leave. Failure detection reports it dead.
	begin = time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, seed, EventDead, c.Name(), converge)
	waitEvent(t, a, EventDead, c.Name(), converge)
	t.Logf("crash detected by two members after %v (suspicion timeout %v..%v)", time.Since(begin), suspMin, suspMax)
	if _, ok := member(a, c.Name()); ok {
		t.Error("a still lists a dead member")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestJoinBeforeSeed(t *testing.T) {
	checkLeaks(t)
	port := freePort(t)
	seedAddr := fmt.Sprintf("127.0.0.1:%d", port)
	var rec logRecorder
	cfg := testConfig("early", 1, seedAddr)
	cfg.Logger = slog.New(&rec)
	early := start(t, cfg)
	waitFor(t, converge, "the early node to fail its first join", func() bool {
		return rec.saw("gossip: no seed answers")
	})
	seedCfg := testConfig("seed", 1)
	seedCfg.BindAddr = seedAddr
	seed := start(t, seedCfg)
	waitConverged(t, []*Node{seed, early}, converge)
}

func TestRestartWithNewPointer(t *testing.T) {
	checkLeaks(t)
	nodes := cluster(t, 2)
	seed, a, b := nodes[0], nodes[1], nodes[2]
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, converge, "b to drop out", func() bool {
		_, s := member(seed, "n1")
		_, o := member(a, "n1")
		return !s && !o
	})
	// Same name, new port, sequence 2 and a new descriptor.
	b2 := start(t, testConfig("n1", 2, seed.Addr().String()))
	want := fakeDescriptor("n1", 2)
	waitFor(t, converge, "the restarted node to be re-admitted with its new descriptor", func() bool {
		return hasDescriptor(seed, "n1", want) && hasDescriptor(a, "n1", want) &&
			hasDescriptor(b2, "seed", fakeDescriptor("seed", 1))
	})
	if m, _ := member(seed, "n1"); m.Pointer.Seq != 2 || m.Addr != b2.Addr() {
		t.Errorf("seed's view of the restarted node: %+v, want seq 2 at %v", m, b2.Addr())
	}
}

func TestUpdateSelf(t *testing.T) {
	checkLeaks(t)
	nodes := cluster(t, 2)
	seed, a := nodes[0], nodes[1]
	desc := fakeDescriptor(a.Name(), 2)
	if err := a.UpdateSelf(fakePointer(a.Name(), 2, desc), desc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, converge, "the new descriptor to spread", func() bool {
		for _, n := range nodes {
			if n != a && !hasDescriptor(n, a.Name(), desc) {
				return false
			}
		}
		return true
	})
	waitEvent(t, seed, EventUpdate, a.Name(), converge)

	if err := a.UpdateSelf(make([]byte, MaxPointerSize+1), desc); !errors.Is(err, ErrTooLarge) {
		t.Errorf("UpdateSelf with a %d-byte pointer: %v, want ErrTooLarge", MaxPointerSize+1, err)
	}
	if err := a.UpdateSelf(fakePointer(a.Name(), 3, desc), []byte("mismatch")); err == nil {
		t.Error("UpdateSelf accepted a descriptor that does not match its pointer")
	}
	if err := a.UpdateSelf(fakePointer("someone", 3, desc), desc); err == nil {
		t.Error("UpdateSelf accepted a pointer for another name")
	}
}

func TestStartRefuses(t *testing.T) {
	checkLeaks(t)
	big := testConfig("big", 1)
	big.Pointer = bytes.Repeat([]byte{'x'}, MaxPointerSize+1)
	if _, err := Start(context.Background(), big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("pointer of %d bytes: %v, want ErrTooLarge", len(big.Pointer), err)
	}
	huge := testConfig("huge", 1)
	huge.Descriptor = make([]byte, MaxDescriptorSize+1)
	if _, err := Start(context.Background(), huge); !errors.Is(err, ErrTooLarge) {
		t.Errorf("descriptor of %d bytes: %v, want ErrTooLarge", len(huge.Descriptor), err)
	}
	// A pointer that does not verify: refused after binding, and the port
	// is released.
	port := freePort(t)
	bad := testConfig("bad", 1)
	bad.BindAddr = fmt.Sprintf("127.0.0.1:%d", port)
	bad.Pointer = fakePointer("other", 1, bad.Descriptor)
	if _, err := Start(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "own pointer") {
		t.Errorf("own pointer that does not verify: %v", err)
	}
	good := testConfig("good", 1)
	good.BindAddr = bad.BindAddr
	n := start(t, good)
	if n.Addr().Port() != uint16(port) {
		t.Errorf("bound %v, want port %d", n.Addr(), port)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(ctx, testConfig("late", 1)); err == nil {
		t.Error("Start with an ended context succeeded")
	}
	key := testConfig("key", 1)
	key.SecretKey = []byte("short")
	if _, err := Start(context.Background(), key); err == nil {
		t.Error("Start with a 5-byte secret key succeeded")
	}
}

// TestContextCloses checks that ending Start's context closes the node.
func TestContextCloses(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	n, err := Start(ctx, testConfig("ctx", 1))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	waitFor(t, converge, "the events channel to close", func() bool {
		select {
		case _, ok := <-n.Events():
			return !ok
		default:
			return false
		}
	})
	if err := n.UpdateSelf(testConfig("ctx", 2).Pointer, testConfig("ctx", 2).Descriptor); !errors.Is(err, ErrClosed) {
		t.Errorf("UpdateSelf after close: %v, want ErrClosed", err)
	}
}

// TestSecretKey checks that the keyring shuts out a node without the key.
func TestSecretKey(t *testing.T) {
	checkLeaks(t)
	key := bytes.Repeat([]byte{7}, 32)
	seedCfg := testConfig("seed", 1)
	seedCfg.SecretKey = key
	seed := start(t, seedCfg)
	memberCfg := testConfig("member", 1, seed.Addr().String())
	memberCfg.SecretKey = key
	m := start(t, memberCfg)
	waitConverged(t, []*Node{seed, m}, converge)

	var rec logRecorder
	outCfg := testConfig("outsider", 1, seed.Addr().String())
	outCfg.Logger = slog.New(&rec)
	out := start(t, outCfg)
	waitFor(t, converge, "the outsider's join to fail", func() bool {
		return rec.saw("gossip: no seed answers")
	})
	if _, ok := member(seed, "outsider"); ok || len(out.Members()) != 0 {
		t.Errorf("a node without the key got in: seed lists %v, it lists %v", seed.Members(), out.Members())
	}
}

func TestEventsDropOldest(t *testing.T) {
	n := &Node{events: make(chan Event, EventQueueSize)}
	const extra = 10
	for i := range EventQueueSize + extra {
		n.emit(Event{Type: EventJoin, Name: fmt.Sprint(i)})
	}
	if got := n.DroppedEvents(); got != extra {
		t.Errorf("dropped %d, want %d", got, extra)
	}
	if ev := <-n.events; ev.Name != fmt.Sprint(extra) {
		t.Errorf("oldest kept event %q, want %q", ev.Name, fmt.Sprint(extra))
	}
}

func TestCheckSeq(t *testing.T) {
	held := PointerInfo{Key: "k", Seq: 5, Digest: [32]byte{1}}
	for _, tc := range []struct {
		got PointerInfo
		ok  bool
	}{
		{PointerInfo{Key: "k", Seq: 6, Digest: [32]byte{2}}, true},
		{PointerInfo{Key: "k", Seq: 5, Digest: [32]byte{1}}, true},
		{PointerInfo{Key: "k", Seq: 4, Digest: [32]byte{1}}, false}, // replay
		{PointerInfo{Key: "k", Seq: 5, Digest: [32]byte{3}}, false}, // equivocation
		{PointerInfo{Key: "other", Seq: 1}, true},
	} {
		if err := checkSeq(held, tc.got); (err == nil) != tc.ok {
			t.Errorf("checkSeq(%+v): %v", tc.got, err)
		}
	}
}

func TestSuspicionTimeout(t *testing.T) {
	for _, tc := range []struct {
		timing   Timing
		n        int
		min, max time.Duration
	}{
		{LAN(), 3, 4 * time.Second, 4 * time.Second}, // too few nodes to confirm
		{LAN(), 10, 4 * time.Second, 24 * time.Second},
		{LAN(), 100, 8 * time.Second, 48 * time.Second},
		{Fast(), 10, 400 * time.Millisecond, 400 * time.Millisecond},
		{Fast(), 100, 800 * time.Millisecond, 800 * time.Millisecond},
		{Timing{}, 10, 4 * time.Second, 24 * time.Second},
	} {
		min, max := tc.timing.SuspicionTimeout(tc.n)
		if min != tc.min || max != tc.max {
			t.Errorf("%+v n=%d: %v..%v, want %v..%v", tc.timing, tc.n, min, max, tc.min, tc.max)
		}
	}
}
