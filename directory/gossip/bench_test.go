package gossip

import (
	"bytes"
	"fmt"

	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// traffic counts what a set of nodes hands to the network: UDP payloads
// and TCP stream bytes written, in both directions of a stream (push/pull
// answers and fetch requests ride on accepted streams too), sorted by
// memberlist's message type, and the push/pulls dialled. IP, UDP and TCP
// headers are not counted.
type traffic struct {
	udp      atomic.Int64 // probes, acks and gossip (memberlist messages)
	udpState atomic.Int64 // of udp, the suspect, alive and dead messages (gossip of membership changes)
	udpNew   atomic.Int64 // of udpState, alive messages carrying an updated pointer (scaleUpdateMark)
	udpUser  atomic.Int64 // this package's messages: first fetch requests, leaving notices
	pushPull atomic.Int64 // push/pull and join streams, both sides
	tcpUser  atomic.Int64 // this package's messages by TCP: fetch answers and retries
	tcpOther atomic.Int64 // anything else by TCP (memberlist's TCP pings)
	exchange atomic.Int64 // push/pulls and joins dialled
}

func (c *traffic) sent() int64 {
	return c.udp.Load() + c.udpUser.Load() + c.pushPull.Load() + c.tcpUser.Load() + c.tcpOther.Load()
}

// memberlist's message types (net.go), as the first byte of a UDP packet
// (after a 5-byte CRC header when the type is hasCrc) or of a TCP stream,
// with compression and encryption off.
const (
	mlSuspect  = 3
	mlAlive    = 4
	mlDead     = 5
	mlPushPull = 6
	mlCompound = 7
	mlUser     = 8
	mlHasCRC   = 12
)

// stateBytes returns how many bytes of the memberlist packet b are
// suspect, alive or dead messages, and of them alive messages whose
// pointer holds scaleUpdateMark, looking into a compound message (type,
// count, count × 2-byte length, the messages; memberlist util.go) where
// gossip rides beside a probe.
func stateBytes(b []byte) (state, updated int) {
	if len(b) == 0 {
		return 0, 0
	}
	switch b[0] {
	case mlAlive:
		if bytes.Contains(b, scaleUpdateMark) {
			return len(b), len(b)
		}
		return len(b), 0
	case mlSuspect, mlDead:
		return len(b), 0
	case mlCompound:
		if len(b) < 2 {
			return 0, 0
		}
		parts := int(b[1])
		off := 2 + 2*parts
		if len(b) < off {
			return 0, 0
		}
		for i := range parts {
			l := int(b[2+2*i])<<8 | int(b[3+2*i])
			if off+l > len(b) {
				break
			}
			s, u := stateBytes(b[off : off+l])
			state, updated = state+s, updated+u
			off += l
		}
	}
	return state, updated
}

func (c *traffic) packet(b []byte) {
	t := -1
	if len(b) > 0 {
		t = int(b[0])
	}
	if t == mlHasCRC && len(b) > 5 {
		t = int(b[5])
	}
	if t == mlUser {
		c.udpUser.Add(int64(len(b)))
		return
	}
	c.udp.Add(int64(len(b)))
	if len(b) > 5 && b[0] == mlHasCRC {
		b = b[5:]
	}
	state, updated := stateBytes(b)
	c.udpState.Add(int64(state))
	c.udpNew.Add(int64(updated))
}

// countingTransport counts a node's traffic into c.
type countingTransport struct {
	memberlist.NodeAwareTransport
	c       *traffic
	streams chan net.Conn
	done    chan struct{}
}

func newCountingTransport(inner memberlist.NodeAwareTransport, c *traffic) *countingTransport {
	t := &countingTransport{NodeAwareTransport: inner, c: c, streams: make(chan net.Conn), done: make(chan struct{})}
	go t.forward() // stops when Shutdown closes done
	return t
}

func (t *countingTransport) forward() {
	for {
		select {
		case c := <-t.NodeAwareTransport.StreamCh():
			select {
			case t.streams <- &countingConn{Conn: c, c: t.c}:
			case <-t.done:
				_ = c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *countingTransport) Shutdown() error {
	err := t.NodeAwareTransport.Shutdown()
	close(t.done)
	return err
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.c.packet(b)
	return t.NodeAwareTransport.WriteTo(b, addr)
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.c.packet(b)
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.NodeAwareTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, c: t.c, dialled: true}, nil
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NodeAwareTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, c: t.c, dialled: true}, nil
}

type countingConn struct {
	net.Conn
	c       *traffic
	dialled bool
	kind    *atomic.Int64 // set by the first Write, from the message type
}

func (c *countingConn) Write(b []byte) (int, error) {
	if c.kind == nil && len(b) > 0 {
		switch b[0] {
		case mlPushPull:
			c.kind = &c.c.pushPull
			if c.dialled {
				c.c.exchange.Add(1)
			}
		case mlUser:
			c.kind = &c.c.tcpUser
		default:
			c.kind = &c.c.tcpOther
		}
	}
	n, err := c.Conn.Write(b)
	if c.kind != nil {
		c.kind.Add(int64(n))
	}
	return n, err
}

// BenchmarkConvergence starts N nodes with Fast timing in one process, all
// joining the first, with 2 KiB descriptors and 200-byte pointers (about
// the directory's sizes). It reports the time from starting the first
// node until every node lists every other (s_to_members) and until every
// node holds every other's verified descriptor (s_to_converge), then the
// bytes memberlist sent per node per second over a following quiet period
// (bytes/node/s): probes, gossip, push/pull with its backstop state, no
// fetches. Run by `make bench`; N=100 takes about 15 s.
func BenchmarkConvergence(b *testing.B) {
	for _, n := range []int{10, 50, 100} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var members, converge, rate float64
			for range b.N {
				m, c, r := runConvergence(b, n)
				members += m.Seconds()
				converge += c.Seconds()
				rate += r
			}
			b.ReportMetric(members/float64(b.N), "s_to_members")
			b.ReportMetric(converge/float64(b.N), "s_to_converge")
			b.ReportMetric(rate/float64(b.N), "bytes/node/s")
		})
	}
}

const (
	benchDescSize    = 2 << 10
	benchPointerSize = 200
	// benchQuiet is the byte-counting window: one push/pull interval as
	// memberlist scales it for 100 nodes (3 × 2 s), so each node initiates
	// about one push/pull in it.
	benchQuiet = 6 * time.Second
)

func runConvergence(b *testing.B, count int) (members, descriptors time.Duration, rate float64) {
	var sent traffic
	nodes := make([]*Node, 0, count)
	descs := make(map[string][]byte, count)
	defer func() {
		for _, n := range nodes {
			_ = n.Close()
		}
	}()
	begin := time.Now()
	for i := range count {
		name := fmt.Sprintf("bench%03d", i)
		desc := bytes.Repeat([]byte{byte(i)}, benchDescSize)
		copy(desc, name)
		var join []string
		if i > 0 {
			join = []string{nodes[0].Addr().String()}
		}
		cfg := testConfig(name, 1, join...)
		cfg.Descriptor = desc
		cfg.Pointer = fakePointer(name, 1, desc)
		cfg.Pointer = append(append(cfg.Pointer, ':'), bytes.Repeat([]byte{'p'}, benchPointerSize-len(cfg.Pointer)-1)...)
		cfg.wrapTransport = func(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
			return newCountingTransport(t, &sent)
		}
		n, err := Start(b.Context(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, n)
		descs[name] = desc
	}
	converged := func() bool {
		for _, n := range nodes {
			ms := n.Members()
			if len(ms) != count-1 {
				return false
			}
			for _, m := range ms {
				if !bytes.Equal(m.Descriptor, descs[m.Name]) {
					return false
				}
			}
		}
		return true
	}
	allMembers := func() bool {
		for _, n := range nodes {
			if len(n.Members()) != count-1 {
				return false
			}
		}
		return true
	}
	deadline := begin.Add(50 * time.Second)
	var membersAt time.Duration // measured at the same 20 ms polls as convergence
	for {
		if membersAt == 0 && allMembers() {
			membersAt = time.Since(begin)
		}
		if converged() {
			break
		}
		if time.Now().After(deadline) {
			minM, minD, gaveUp := count, count, 0
			for _, n := range nodes {
				ms := n.Members()
				d := 0
				for _, m := range ms {
					if m.Descriptor != nil {
						d++
					}
				}
				minM, minD = min(minM, len(ms)), min(minD, d)
				n.mu.Lock()
				for _, p := range n.peers {
					if p.gaveUp {
						gaveUp++
					}
				}
				n.mu.Unlock()
			}
			b.Fatalf("%d nodes did not converge within %v: fewest members %d, fewest descriptors %d, fetches given up %d",
				count, deadline.Sub(begin), minM, minD, gaveUp)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(begin)
	if membersAt == 0 { // both completed between two calls of one poll
		membersAt = took
	}

	before := sent.sent()
	quietStart := time.Now()
	time.Sleep(benchQuiet)
	rate = float64(sent.sent()-before) / float64(count) / time.Since(quietStart).Seconds()
	if !converged() {
		b.Errorf("%d nodes lost convergence during the quiet period", count)
	}
	return membersAt, took, rate
}
