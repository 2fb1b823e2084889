package relay

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"veil/conf"
	"veil/directory"
	"veil/onion"
	"veil/onion/keys"
	"veil/relay/client"
	"veil/relay/link"
	"veil/relay/stream"
)

// normalSpeed bounds an honest fetch of a few MB while other peers
// misbehave. Undisturbed it takes about a second here, under the race
// detector on two busy cores; a relay that waits on a peer that stopped
// reading instead takes its 30 s send timeout per stalled circuit.
const normalSpeed = 20 * time.Second

// stallProxy carries one client's link to a relay. Once paused it stops
// reading what the relay sends: as the relay sees it, a client that has
// stopped reading its socket. Once muted it stops passing on what the
// client sends too, so that a client that gives up on its silent circuits
// cannot tell the relay: a peer that just stopped, as an attacker would.
// Its socket towards the relay has a small receive buffer, so that the
// relay's queue fills at once.
type stallProxy struct {
	addr          netip.AddrPort
	paused, muted chan struct{}
	pauseOnce     sync.Once
	muteOnce      sync.Once
}

func newStallProxy(t *testing.T, to netip.AddrPort) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{addr: netip.MustParseAddrPort(ln.Addr().String()),
		paused: make(chan struct{}), muted: make(chan struct{})}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		close(stop)
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	// copyUntil copies from src to dst until off is closed, then waits
	// for the test's end without reading src again.
	copyUntil := func(dst, src net.Conn, off chan struct{}) {
		buf := make([]byte, 16<<10)
		for {
			select {
			case <-off:
				<-stop
				return
			default:
			}
			n, err := src.Read(buf)
			if _, werr := dst.Write(buf[:n]); err != nil || werr != nil {
				return
			}
		}
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r, err := d.Dial("tcp", to.String())
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, r)
			mu.Unlock()
			wg.Go(func() { copyUntil(r, c, p.muted) })
			wg.Go(func() { copyUntil(c, r, p.paused) })
		}
	})
	return p
}

// pause stops reading from the relay, for good.
func (p *stallProxy) pause() { p.pauseOnce.Do(func() { close(p.paused) }) }

// mute stops passing on what the client sends, for good.
func (p *stallProxy) mute() { p.muteOnce.Do(func() { close(p.muted) }) }

// viaProxy returns hops with the first relay reached at p instead.
func viaProxy(hops []directory.Entry, p *stallProxy) []directory.Entry {
	hops = slices.Clone(hops)
	d := *hops[0].Descriptor
	d.ORAddr = p.addr
	hops[0].Descriptor = &d
	return hops
}

// destroyedFor is the metric of circuits a relay destroyed for reason.
func destroyedFor(reason onion.DestroyReason) string {
	return fmt.Sprintf("veil_relay_circuits_destroyed_total{reason=%q}", reason.String())
}

// floodServer answers every request (whatever it is, once its header
// ends) with bytes until the connection fails, and counts the requests.
func floodServer(t *testing.T) (netip.AddrPort, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				requests.Add(1)
				chunk := make([]byte, 64<<10)
				for {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			})
		}
	})
	return netip.MustParseAddrPort(ln.Addr().String()), &requests
}

// stalledDownloads are streams of a client that reaches its guard
// through a stallProxy.
type stalledDownloads struct {
	p       *stallProxy
	streams []*stream.Stream
}

// openDownloads opens streams to dst on each circuit, which reach their
// guard through p. They are opened before p pauses: CONNECTED must come
// back.
func openDownloads(t *testing.T, ctx context.Context, circs []*client.Circuit, p *stallProxy, dst netip.AddrPort, streams int) *stalledDownloads {
	t.Helper()
	d := &stalledDownloads{p: p}
	for _, c := range circs {
		for range streams {
			s, err := c.Dial(ctx, onion.Begin{Addr: dst.Addr(), Port: dst.Port()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			d.streams = append(d.streams, s)
		}
	}
	return d
}

// stall stops the client reading, then sends each stream's request for
// an endless download. The streams are read in the background until the
// test ends, from a socket that brings nothing more.
func (d *stalledDownloads) stall() {
	d.p.pause()
	for _, s := range d.streams {
		fmt.Fprintf(s, "GET / HTTP/1.0\r\n\r\n")
		go io.Copy(io.Discard, s) // ends when the stream is closed
	}
}

// timedFetch fetches size bytes from dst (target) on a new stream of c,
// giving up after 2×normalSpeed, and returns how long it took.
func timedFetch(ctx context.Context, c *client.Circuit, dst netip.AddrPort, block []byte, size int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*normalSpeed)
	defer cancel()
	start := time.Now()
	fail := func(err error) (time.Duration, error) {
		d := time.Since(start)
		return d, fmt.Errorf("fetch failed after %v: %w", d.Round(time.Millisecond), err)
	}
	s, err := c.Dial(ctx, onion.Begin{Addr: dst.Addr(), Port: dst.Port()})
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	fmt.Fprintf(s, "GET /bytes/%d HTTP/1.0\r\nHost: x\r\n\r\n", size)
	resp, err := http.ReadResponse(bufio.NewReader(s), nil)
	if err != nil {
		return fail(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fail(err)
	}
	if !bytes.Equal(body, expected(block, size)) {
		return fail(fmt.Errorf("%d bytes that differ from what was served", len(body)))
	}
	return time.Since(start), nil
}

// within says how long a waitUntil took.
func within(d time.Duration) string {
	if d < 0 {
		return fmt.Sprintf("not within %v", hangTimeout/2)
	}
	return fmt.Sprintf("within %v", d.Round(time.Millisecond))
}

// waitUntil polls cond until it holds and returns how long that took, or
// -1 after hangTimeout/2: the relays act within a fraction of a second.
func waitUntil(cond func() bool) time.Duration {
	start := time.Now()
	for !cond() {
		if time.Since(start) > hangTimeout/2 {
			return -1
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// TestStalledClientDoesNotStallItsGuardLink: two clients have circuits
// through the same guard, middle and exit, so the guard reads both from
// one link to the middle. One client stops reading its socket in the
// middle of a download. The guard must hold its cells for it, not wait
// for it: the other client's downloads through the same link go on at
// their usual speed.
func TestStalledClientDoesNotStallItsGuardLink(t *testing.T) {
	n := newTestNetwork(t, 1)
	want := map[keys.NodeID]bool{}
	for _, name := range []string{"guard", "middle"} {
		want[n.startRelay(name, false).ID()] = true
	}
	want[n.startRelay("exit", true).ID()] = true
	honest, v := testClient(t, n, want)
	stalled, _ := testClient(t, n, want)
	hops := hopsByName(t, n, v, "guard", "middle", "exit")
	guard := n.relays["guard"].r
	dst, block := target(t)
	flood, requests := floodServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()

	hc, err := honest.Build(ctx, hops)
	if err != nil {
		t.Fatal(err)
	}
	const size = 4 << 20
	before, err := timedFetch(ctx, hc, dst, block, size)
	if err != nil {
		t.Fatal(err)
	}

	// The other client: two circuits with two downloads each fill their
	// 4 MiB windows, far more than the sockets between the guard and
	// the client hold, and it stops reading.
	proxy := newStallProxy(t, hops[0].Descriptor.ORAddr)
	var circs []*client.Circuit
	for range 2 {
		c, err := stalled.Build(ctx, viaProxy(hops, proxy))
		if err != nil {
			t.Fatal(err)
		}
		circs = append(circs, c)
	}
	openDownloads(t, ctx, circs, proxy, flood, 2).stall()
	waitFor(t, func() bool { return requests.Load() == 4 }, "the stalled client's requests")
	proxy.mute()
	// The guard's queue towards the stalled client fills up: a send
	// queue's worth at least.
	waitFor(t, func() bool { return relayMetric(t, guard, "veil_relay_queued_cells") >= link.DefaultSendQueue },
		"the guard's queue to the stalled client to fill")

	during, err := timedFetch(ctx, hc, dst, block, size)
	t.Logf("honest %d MiB fetch: %v before the other client stalled, %v after (%v); the guard holds %d cells for the stalled client",
		size>>20, before.Round(time.Millisecond), during.Round(time.Millisecond), err, relayMetric(t, guard, "veil_relay_queued_cells"))
	if err != nil {
		t.Errorf("the honest client, while the other did not read: %v", err)
	} else if during > normalSpeed {
		t.Errorf("the honest fetch took %v while another client of the guard did not read (%v before)", during, before)
	}
	if err := hc.Err(); err != nil {
		t.Errorf("honest circuit: %v", err)
	}
}

// TestAttackNonReadingLinksLoseTheirOwnCircuits: six attackers, each on a
// link of its own to the guard, pull downloads on two circuits each and
// stop reading their sockets, so the guard holds several times its memory
// cap for them. Meanwhile an honest client downloads through the same
// guard, and uploads through a circuit that exits at the guard to a
// destination that reads slowly but steadily, so the guard holds some of
// it too: a circuit with queued exit data, the only kind the governor used
// to destroy, while the attackers' cells stayed. The guard destroys
// attackers' circuits (RESOURCELIMIT) and closes their links once they
// stay stuck, as many as it takes to be back under its cap; the honest
// circuits are never among them, and keep working at their usual speed.
func TestAttackNonReadingLinksLoseTheirOwnCircuits(t *testing.T) {
	const (
		attackers = 6
		// Room for the honest circuits, whose windows let them hold 6
		// MiB here (2 MiB of upload waiting for the slow sink, 4 MiB of
		// download in flight), and a fraction of the attackers' 48 MiB.
		memCap = 8 << 20
	)
	n := newTestNetwork(t, 1)
	// The guard's cap is under test; the others keep the default, so
	// that the attackers' windows, 48 MiB in flight at once, leave the
	// exit whole.
	n.maxMemory = memCap
	want := map[keys.NodeID]bool{}
	want[n.startRelay("guard", true).ID()] = true
	n.maxMemory = conf.DefaultRelay().MaxMemory
	want[n.startRelay("middle", false).ID()] = true
	want[n.startRelay("exit", true).ID()] = true
	honest, v := testClient(t, n, want)
	hops := hopsByName(t, n, v, "guard", "middle", "exit")
	guard := n.relays["guard"].r
	dst, block := target(t)
	flood, requests := floodServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*hangTimeout)
	defer cancel()

	hc, err := honest.Build(ctx, hops)
	if err != nil {
		t.Fatal(err)
	}
	const size = 4 << 20
	before, err := timedFetch(ctx, hc, dst, block, size)
	if err != nil {
		t.Fatal(err)
	}

	// The honest upload, through the middle and the exit to a sink
	// behind the guard that takes 2 MB/s.
	sink, sunk := sinkServer(t, 32<<10, 16*time.Millisecond)
	uc, err := honest.Build(ctx, hopsByName(t, n, v, "middle", "exit", "guard"))
	if err != nil {
		t.Fatal(err)
	}
	us, err := uc.Dial(ctx, onion.Begin{Addr: sink.Addr(), Port: sink.Port()})
	if err != nil {
		t.Fatal(err)
	}
	defer us.Close()
	stopUpload := make(chan struct{})
	uploaded := make(chan error, 1)
	go func() {
		chunk := make([]byte, 64<<10)
		for {
			select {
			case <-stopUpload:
				uploaded <- nil
				return
			default:
			}
			if _, err := us.Write(chunk); err != nil {
				uploaded <- err
				return
			}
		}
	}()

	// The attackers set up, then attack at once.
	var attacks []*stalledDownloads
	for i := range attackers {
		cl, _ := testClient(t, n, want)
		p := newStallProxy(t, hops[0].Descriptor.ORAddr)
		var circs []*client.Circuit
		for range 2 {
			c, err := cl.Build(ctx, viaProxy(hops, p))
			if err != nil {
				t.Fatalf("attacker %d: %v", i, err)
			}
			circs = append(circs, c)
		}
		attacks = append(attacks, openDownloads(t, ctx, circs, p, flood, 2))
	}
	resourceLimit := destroyedFor(onion.DestroyResourceLimit)
	limited := relayMetric(t, guard, resourceLimit)
	links := relayMetric(t, guard, "veil_relay_links")
	sunkBefore := sunk()
	for _, a := range attacks {
		a.stall()
	}
	waitFor(t, func() bool { return requests.Load() == 4*attackers }, "the attackers' requests")
	for _, a := range attacks {
		a.p.mute()
	}

	during, duringErr := timedFetch(ctx, hc, dst, block, size)
	// Counted from the end of that fetch.
	destroyedIn := waitUntil(func() bool { return relayMetric(t, guard, resourceLimit) > limited })
	// Once their circuits are gone, the stuck links still hold a send
	// queue each, more than the cap together: some go too.
	underIn := waitUntil(func() bool { return relayMetric(t, guard, "veil_relay_queued_cells")*onion.CellSize <= memCap })
	after, afterErr := timedFetch(ctx, hc, dst, block, size)
	close(stopUpload)
	upErr := <-uploaded
	upDuring := sunk() - sunkBefore
	destroyed := relayMetric(t, guard, resourceLimit) - limited
	closed := links - relayMetric(t, guard, "veil_relay_links")

	t.Logf("honest %d MiB fetch: %v before the attack, %v during it (%v), %v after (%v); %.1f MiB uploaded meanwhile", size>>20,
		before.Round(time.Millisecond), during.Round(time.Millisecond), duringErr, after.Round(time.Millisecond), afterErr,
		float64(upDuring)/(1<<20))
	t.Logf("guard, after that fetch: a first circuit destroyed (RESOURCELIMIT) %s, under its cap %s; %d circuits destroyed, %d of %d links closed, %d cells queued",
		within(destroyedIn), within(underIn), destroyed, closed, links,
		relayMetric(t, guard, "veil_relay_queued_cells"))
	if duringErr != nil || afterErr != nil {
		t.Errorf("the honest download failed: %v during the attack, %v after", duringErr, afterErr)
	} else if during > normalSpeed {
		t.Errorf("the honest fetch took %v during the attack (%v before)", during, before)
	}
	if err := hc.Err(); err != nil {
		t.Errorf("the honest download's circuit: %v", err)
	}
	if upErr != nil || uc.Err() != nil || upDuring == 0 {
		t.Errorf("the honest upload: %v, %d bytes during the attack (circuit: %v)", upErr, upDuring, uc.Err())
	}
	if destroyedIn < 0 {
		t.Errorf("the guard destroyed no circuit for its memory cap")
	}
	if underIn < 0 {
		t.Errorf("the guard did not get back under its memory cap")
	}
	// The honest circuits stand, so every circuit destroyed and link
	// closed was an attacker's.
	if destroyed > 2*attackers {
		t.Errorf("the guard destroyed %d circuits for RESOURCELIMIT; only the attackers' %d held its memory", destroyed, 2*attackers)
	}
}

// sinkServer accepts connections and reads them to the end, chunk bytes
// every so often, counting the bytes. Its sockets have small buffers, so
// that what it has not read waits at the sender.
func sinkServer(t *testing.T, chunk int, every time.Duration) (netip.AddrPort, func() int) {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		}); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				buf := make([]byte, chunk)
				for {
					time.Sleep(every)
					k, err := io.ReadFull(c, buf)
					mu.Lock()
					total += k
					mu.Unlock()
					if err != nil {
						return
					}
				}
			})
		}
	})
	return netip.MustParseAddrPort(ln.Addr().String()), func() int {
		mu.Lock()
		defer mu.Unlock()
		return total
	}
}
