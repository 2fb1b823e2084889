package link

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"veil/onion"
	"veil/relay/internal/ratelimit"
)

// capRate is the cap these tests set: small, so that a few seconds show
// it, and above what conf accepts at least (75 KiB/s).
const capRate = 1 << 20

// arrivalLog records what a peer read, in order, with when.
type arrivalLog struct {
	mu    sync.Mutex // guards the following fields
	cells []arrival
	when  []time.Time
}

func (a *arrivalLog) handler() *testHandler {
	return newHandler(func(_ *Link, c *onion.Cell) {
		a.mu.Lock()
		a.cells = append(a.cells, arrival{c.CircID, binary.BigEndian.Uint64(c.Payload[:8])})
		a.when = append(a.when, time.Now())
		a.mu.Unlock()
		Release(c)
	})
}

func (a *arrivalLog) snapshot() ([]arrival, []time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]arrival(nil), a.cells...), append([]time.Time(nil), a.when...)
}

// keepBusy keeps circuit circ of l about `depth` cells deep until ctx
// ends, as a circuit with a full window does.
func keepBusy(ctx context.Context, t *testing.T, l *Link, circ uint32, depth int, wg *sync.WaitGroup) {
	wg.Go(func() {
		var seq uint64
		for ctx.Err() == nil {
			if q, _ := l.CircuitQueued(circ); q >= depth {
				time.Sleep(time.Millisecond)
				continue
			}
			if err := l.Enqueue(seqCell(circ, seq)); err != nil {
				if !errors.Is(err, ErrClosed) {
					t.Errorf("circuit %d, cell %d: %v", circ, seq, err)
				}
				return
			}
			seq++
		}
	})
}

// TestWriteCapSharedFairly: two links share one limiter. A busy circuit on
// each keeps a deep queue; a light circuit on the first link sends 20
// cells in the middle. What both links write together never beats the cap
// (burst plus rate times the time), the second link's busy circuit gets a
// fair part of it, and the light circuit's cells are not held behind the
// busy circuit's backlog.
func TestWriteCapSharedFairly(t *testing.T) {
	checkLeaks(t)
	lim := ratelimit.New(capRate, capRate)
	s := startServer(t, newIdentity(t))
	var log1, log2 arrivalLog
	l1, _ := establishPair(t, s, nil, Options{Handler: newHandler(nil), Limiter: lim}, Options{Handler: log1.handler()})
	l2, _ := establishPair(t, s, nil, Options{Handler: newHandler(nil), Limiter: lim}, Options{Handler: log2.handler()})
	busy1, light, busy2 := mustCircID(t, l1), mustCircID(t, l1), mustCircID(t, l2)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	start := time.Now()
	keepBusy(ctx, t, l1, busy1, 1000, &wg)
	keepBusy(ctx, t, l2, busy2, 1000, &wg)

	time.Sleep(1500 * time.Millisecond) // well past the burst
	const lightCells = 20
	lightAt := len(mustSnapshot(&log1))
	for seq := range uint64(lightCells) {
		if err := l1.Enqueue(seqCell(light, seq)); err != nil {
			t.Fatalf("light circuit, cell %d: %v", seq, err)
		}
	}
	// Wait for the light circuit's cells (a hang detector, not a speed
	// check: at the cap they take well under a second).
	deadline := time.Now().Add(testTimeout)
	var lastLight int
	for {
		cells, _ := log1.snapshot()
		n := 0
		for i, a := range cells {
			if a.circ == light {
				n, lastLight = n+1, i
			}
		}
		if n == lightCells {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the light circuit's %d cells arrived", n, lightCells)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second)
	cancel()
	elapsed := time.Since(start)
	c1, _ := log1.snapshot()
	c2, _ := log2.snapshot()
	total := (len(c1) + len(c2)) * onion.CellSize
	limit := capRate + int(float64(capRate)*elapsed.Seconds()) + 2*batchCells*onion.CellSize
	t.Logf("%.1f s: link 1 wrote %d cells, link 2 %d; %d bytes against a cap of %d; the light circuit's cells arrived within %d cells of link 1",
		elapsed.Seconds(), len(c1), len(c2), total, limit, lastLight-lightAt+1)
	if total > limit {
		t.Errorf("the links wrote %d bytes in %v, more than burst + rate x time = %d", total, elapsed, limit)
	}
	if len(c2) < len(c1)/3 || len(c1) < len(c2)/3 {
		t.Errorf("unfair split of the cap between two busy links: %d and %d cells", len(c1), len(c2))
	}
	// Behind the light circuit's first cell there can be at most the shallow send
	// queue, one batch the writer holds, and one cell of the busy circuit
	// for each of the light one's (refill takes them in turn).
	if most := shallowQueue + batchCells + 2*lightCells; lastLight-lightAt+1 > most {
		t.Errorf("the light circuit's 20 cells took %d cells of link 1 to arrive, want at most %d: the busy circuit starved it", lastLight-lightAt+1, most)
	}
}

func mustSnapshot(a *arrivalLog) []arrival {
	c, _ := a.snapshot()
	return c
}

// TestReadCapPushesBack: a link with a limiter reads no faster than the
// cap, however fast its peer writes.
func TestReadCapPushesBack(t *testing.T) {
	checkLeaks(t)
	lim := ratelimit.New(capRate, capRate)
	s := startServer(t, newIdentity(t))
	var got arrivalLog
	l, _ := establishPair(t, s, nil, Options{Handler: newHandler(nil)}, Options{Handler: got.handler(), Limiter: lim})
	circ := mustCircID(t, l)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	start := time.Now()
	keepBusy(ctx, t, l, circ, 1000, &wg)
	time.Sleep(3 * time.Second)
	cells, _ := got.snapshot()
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	read, _ := lim.Counted()
	limit := capRate + int(float64(capRate)*elapsed.Seconds()) + onion.CellSize
	t.Logf("%.1f s: read %d cells (%d bytes counted) against a cap of %d bytes", elapsed.Seconds(), len(cells), read, limit)
	if len(cells)*onion.CellSize > limit {
		t.Errorf("read %d bytes in %v, more than burst + rate x time = %d", len(cells)*onion.CellSize, elapsed, limit)
	}
	if len(cells) == 0 {
		t.Error("nothing was read")
	}
}
