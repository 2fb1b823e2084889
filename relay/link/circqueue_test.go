package link

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"veil/onion"
)

// arrival is a cell a test peer read: its circuit and sequence number.
type arrival struct {
	circ uint32
	seq  uint64
}

// seqCell is a RELAY cell on circ carrying seq in its first bytes.
func seqCell(circ uint32, seq uint64) *onion.Cell {
	c := NewCell()
	c.CircID, c.Cmd = circ, onion.CellRelay
	binary.BigEndian.PutUint64(c.Payload[:8], seq)
	return c
}

// TestEnqueueNeverWaits: towards a peer that has stopped reading, Enqueue
// returns at once, cells waiting in their circuit's queue and charged to
// it, up to MaxCircuitQueue per circuit and no further; another circuit
// still queues its own cells; once the peer reads, every cell arrives in
// its circuit's order, and the second circuit's cells do not wait behind
// all of the first's; a released circuit's waiting cells are dropped.
func TestEnqueueNeverWaits(t *testing.T) {
	checkLeaks(t)
	unblock := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release)
	got := make(chan arrival, 4*MaxCircuitQueue)
	peer := newHandler(func(_ *Link, c *onion.Cell) {
		<-unblock // a peer that does not read
		got <- arrival{c.CircID, binary.BigEndian.Uint64(c.Payload[:8])}
		Release(c)
	})
	s := startServer(t, newIdentity(t))
	l, _ := establishPair(t, s, nil, Options{Handler: newHandler(nil), SendQueue: 8}, Options{Handler: peer})
	a, b, dropped := mustCircID(t, l), mustCircID(t, l), mustCircID(t, l)

	// More than the socket buffers and the send queue hold: the
	// circuit's own queue fills to its bound, and Enqueue never waits.
	start := time.Now()
	var sentA uint64
	for ; ; sentA++ {
		c := seqCell(a, sentA)
		err := l.Enqueue(c)
		if errors.Is(err, ErrCircuitQueueFull) {
			Release(c)
			break
		}
		if err != nil {
			t.Fatalf("enqueue %d: %v", sentA, err)
		}
		if sentA > 1<<16 {
			t.Fatal("a circuit queued 256 MiB towards a peer that does not read")
		}
	}
	queued, waiting := l.CircuitQueued(a)
	t.Logf("circuit A: %d cells enqueued in %v, %d held by the link, %d of them waiting", sentA, time.Since(start), queued, waiting)
	if queued != MaxCircuitQueue || waiting == 0 {
		t.Errorf("circuit A has %d cells queued, %d waiting; want %d queued, some waiting", queued, waiting, MaxCircuitQueue)
	}
	const sentB = 20
	for seq := range uint64(sentB) {
		if err := l.Enqueue(seqCell(b, seq)); err != nil {
			t.Fatalf("circuit B, cell %d: %v", seq, err)
		}
	}
	// All of B's cells were taken; the writer may already have put one or
	// two into the last room the socket had, which no longer count.
	if q, _ := l.CircuitQueued(b); q > sentB || q < sentB-2 {
		t.Errorf("circuit B has %d cells queued, want %d (or a couple fewer, written)", q, sentB)
	}
	// Circuit A's next cell must not overtake those that wait.
	if c := seqCell(a, sentA); l.TrySend(c) || l.Queue(c) {
		t.Fatal("a cell overtook its circuit's waiting cells")
	} else {
		Release(c)
	}
	for seq := range uint64(100) {
		if err := l.Enqueue(seqCell(dropped, seq)); err != nil {
			t.Fatalf("circuit C, cell %d: %v", seq, err)
		}
	}
	// The writer may have moved a few into the send queue, which are
	// still written; the rest wait, and go with the circuit.
	before := l.Stats()
	_, waitingC := l.CircuitQueued(dropped)
	l.ReleaseCircID(dropped)
	if after := l.Stats(); waitingC == 0 || after.Waiting != before.Waiting-waitingC {
		t.Errorf("releasing a circuit with %d cells waiting left %d waiting of %d", waitingC, after.Waiting, before.Waiting)
	}

	release()
	next := map[uint32]uint64{}
	var lastA, firstB int = -1, -1
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for i := 0; next[a] < sentA || next[b] < sentB; i++ {
		select {
		case r := <-got:
			if r.circ == dropped && r.seq >= uint64(100-waitingC) {
				t.Fatalf("cell %d of the released circuit arrived, of the %d that waited", r.seq, waitingC)
			}
			if r.seq != next[r.circ] {
				t.Fatalf("circuit %#x: got cell %d, want %d", r.circ, r.seq, next[r.circ])
			}
			next[r.circ]++
			if r.circ == a {
				lastA = i
			} else if firstB < 0 {
				firstB = i
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d cells of A and %d of %d of B arrived", next[a], sentA, next[b], sentB)
		}
	}
	if firstB > lastA {
		t.Errorf("circuit B's first cell came after all %d of A's: no turn for B", sentA)
	}
	waitFor(t, func() bool { st := l.Stats(); return st.Queued == 0 && st.Waiting == 0 }, "the link's queues to empty")
	if q, w := l.CircuitQueued(a); q != 0 || w != 0 {
		t.Errorf("circuit A still has %d cells charged, %d waiting", q, w)
	}
}

// TestWriteDeadline: a link whose peer stops reading is closed with
// ErrWriteStalled about WriteTimeout after it last took a byte; one whose
// peer reads slowly, a cell at a time, is not.
func TestWriteDeadline(t *testing.T) {
	checkLeaks(t)
	const timeout = 500 * time.Millisecond
	for _, tc := range []struct {
		name  string
		reads bool
	}{{"stalled", false}, {"slow", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, newIdentity(t))
			cc := s.dial(t, nil)
			sc := s.accept(t) // a raw peer
			defer sc.NetConn().Close()
			h := newHandler(nil)
			lc := make(chan *Link, 1)
			go func() {
				l, err := Establish(context.Background(), cc, Options{Handler: h, Initiator: true, WriteTimeout: timeout})
				if err != nil {
					t.Error(err)
				}
				lc <- l
			}()
			rawVersions(t, sc)
			l := <-lc
			if l == nil {
				t.FailNow()
			}
			closeAtCleanup(t, l)
			id := mustCircID(t, l)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			defer wg.Wait()
			defer close(stop)
			if tc.reads {
				wg.Go(func() {
					// 16 KiB every 50 ms: slow next to loopback,
					// and enough that the receiving kernel opens
					// its window (by one 64 KiB loopback segment)
					// within a deadline.
					var buf [16 << 10]byte
					for {
						select {
						case <-stop:
							return
						case <-time.After(timeout / 10):
						}
						if _, err := sc.Read(buf[:]); err != nil {
							return
						}
					}
				})
			}
			// Keep cells queued: more than the socket buffers take.
			start := time.Now()
			wg.Go(func() {
				for seq := uint64(0); ; seq++ {
					select {
					case <-stop:
						return
					case <-l.Done():
						return
					default:
					}
					if err := l.Enqueue(seqCell(id, seq)); err != nil {
						time.Sleep(timeout / 10)
					}
				}
			})
			if tc.reads {
				// Eight deadlines' worth of slow reading: never closed.
				select {
				case <-h.closed:
					t.Fatalf("a link whose peer reads was closed after %v: %v", time.Since(start), h.waitClosed(t))
				case <-time.After(8 * timeout):
				}
				return
			}
			err := h.waitClosed(t)
			t.Logf("closed after %v: %v", time.Since(start), err)
			if !errors.Is(err, ErrWriteStalled) {
				t.Errorf("LinkClosed(%v), want ErrWriteStalled", err)
			}
		})
	}
}

// waitFor polls cond until it holds, or fails after testTimeout.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
