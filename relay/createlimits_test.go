package relay

import (
	"bytes"
	"context"
	"testing"
	"time"

	"veil/directory"
	"veil/onion"
	"veil/onion/keys"
	"veil/relay/link"
)

// answer is a cell a bare link received: command, circuit and, for a
// DESTROY, its reason.
type answer struct {
	cmd    onion.CellCmd
	id     uint32
	reason onion.DestroyReason
}

// bareLink is an anonymous link that passes every cell it receives to a
// channel, for a test to play a client byte by byte.
type bareLink chan answer

func (b bareLink) HandleCell(_ *link.Link, c *onion.Cell) {
	a := answer{cmd: c.Cmd, id: c.CircID}
	if c.Cmd == onion.CellDestroy {
		a.reason, _ = c.DestroyReason()
	}
	link.Release(c)
	select {
	case b <- a:
	default: // the test stopped listening
	}
}

func (b bareLink) LinkClosed(*link.Link, error) {}

// dialBare opens an anonymous link to relay e; t's cleanup closes it.
func dialBare(t *testing.T, e directory.Entry) (*link.Link, bareLink) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	d := e.Descriptor
	tc, err := link.Dial(ctx, d.ORAddr.String(), d.NodeID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	answers := make(bareLink, 16)
	l, err := link.Establish(ctx, tc, link.Options{Handler: answers, Initiator: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close()
		l.Wait()
	})
	return l, answers
}

// sendCreate sends a CREATE with a valid handshake for relay e.
func sendCreate(t *testing.T, l *link.Link, e directory.Entry) uint32 {
	t.Helper()
	d := e.Descriptor
	hs, err := onion.NewClientHandshake(d.NodeID(), d.OnionCert.OnionKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Clear()
	id, err := l.NewCircID()
	if err != nil {
		t.Fatal(err)
	}
	c, err := onion.NewCreateCell(id, bytes.Clone(hs.Request()))
	if err != nil {
		t.Fatal(err)
	}
	if !l.TrySend(c) {
		t.Fatal("CREATE: send queue full")
	}
	return id
}

func nextAnswer(t *testing.T, answers bareLink) answer {
	t.Helper()
	select {
	case a := <-answers:
		return a
	case <-time.After(hangTimeout):
		t.Fatal("no answer from the relay")
		return answer{}
	}
}

// TestUnusedCircuitsAreReaped (issue 13, item 3): a circuit a client
// created and never used (no EXTEND, no stream) is destroyed with TIMEOUT
// once it has been unused for unusedAfter, freeing its place; a circuit
// built through the same relay and left idle as long still carries a
// stream afterwards.
func TestUnusedCircuitsAreReaped(t *testing.T) {
	const after = 500 * time.Millisecond
	n := newTestNetwork(t, 1)
	n.unusedAfter = after
	want := map[keys.NodeID]bool{}
	for i, name := range []string{"guard", "exit", "middle"} {
		want[n.startRelay(name, i == 1).ID()] = true
	}
	cl, v := testClient(t, n, want)
	dst, block := target(t)
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	built, err := cl.Build(ctx, hopsByName(t, n, v, "guard", "middle", "exit"))
	if err != nil {
		t.Fatal(err)
	}

	guard := hopsByName(t, n, v, "guard")[0]
	l, answers := dialBare(t, guard)
	id := sendCreate(t, l, guard)
	if a := nextAnswer(t, answers); a.cmd != onion.CellCreated || a.id != id {
		t.Fatalf("CREATE answered %+v, want CREATED", a)
	}
	created := time.Now()
	a := nextAnswer(t, answers)
	if a.cmd != onion.CellDestroy || a.id != id || a.reason != onion.DestroyTimeout {
		t.Fatalf("an unused circuit got %+v, want DESTROY(TIMEOUT)", a)
	}
	if d := time.Since(created); d < after {
		t.Fatalf("an unused circuit destroyed after %v, before unusedAfter (%v)", d, after)
	}

	// The built circuit was as idle for longer, and still works.
	if err := built.Err(); err != nil {
		t.Fatalf("the built circuit: %v", err)
	}
	s, err := built.Dial(ctx, onion.Begin{Addr: dst.Addr(), Port: dst.Port()})
	if err != nil {
		t.Fatalf("a stream on the idle built circuit: %v", err)
	}
	defer s.Close()
	if got := get(t, s, 1000); !bytes.Equal(got, expected(block, 1000)) {
		t.Fatal("the stream's body differs from what was served")
	}
	if got := sumMetric(t, n, `veil_relay_circuits_destroyed_total{reason="TIMEOUT"}`); got != 1 {
		t.Fatalf("relays count %d circuits destroyed for TIMEOUT, want 1", got)
	}
}
