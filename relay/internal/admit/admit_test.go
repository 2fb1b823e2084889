package admit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeConn is a connection from addr that records its Close.
type fakeConn struct {
	net.Conn // nil: only RemoteAddr and Close are called
	addr     net.Addr
	closed   atomic.Bool
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.addr }
func (c *fakeConn) Close() error         { c.closed.Store(true); return nil }

func from(ip string) *fakeConn {
	return &fakeConn{addr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 1234))}
}

type admitted struct {
	c *fakeConn
	e *Entry
}

func admitFrom(t *testing.T, tb *Table, ip string, want Eviction) admitted {
	t.Helper()
	c := from(ip)
	e, why := tb.Admit(c)
	if why != want {
		t.Fatalf("admit from %s: eviction %d, want %d", ip, why, want)
	}
	return admitted{c, e}
}

// checkOpen fails unless exactly the connections marked true are open.
func checkOpen(t *testing.T, names string, as []admitted, open ...bool) {
	t.Helper()
	for i, a := range as {
		if isOpen := !a.c.closed.Load(); isOpen != open[i] {
			t.Errorf("%c: open %v, want %v", names[i], isOpen, open[i])
		}
	}
}

// At the total limit the oldest silent connection goes, however young,
// before any that has spoken; when all have spoken, the oldest. The new
// connection is never the one closed. Removing the silent-first rule
// makes the first admission below evict a instead of b.
func TestEvictsOldestSilentFirst(t *testing.T) {
	tb := New(3, 3)
	a := admitFrom(t, tb, "192.0.2.1", NoEviction)
	b := admitFrom(t, tb, "192.0.2.2", NoEviction)
	c := admitFrom(t, tb, "192.0.2.3", NoEviction)
	a.e.Hear()
	c.e.Hear()
	if !a.e.Heard() || b.e.Heard() {
		t.Fatal("Heard does not report Hear")
	}

	d := admitFrom(t, tb, "192.0.2.4", AtLimit)
	checkOpen(t, "abcd", []admitted{a, b, c, d}, true, false, true, true)

	e := admitFrom(t, tb, "192.0.2.5", AtLimit) // d is the only silent one
	checkOpen(t, "acde", []admitted{a, c, d, e}, true, true, false, true)

	e.e.Hear()
	f := admitFrom(t, tb, "192.0.2.6", AtLimit) // all have spoken: a is oldest
	checkOpen(t, "acef", []admitted{a, c, e, f}, false, true, true, true)
	if n := tb.entries.Len(); n != 3 {
		t.Errorf("%d entries, want 3", n)
	}
}

// At the per-source limit the source's own victim goes, by the same rule,
// and other sources are untouched. An IPv6 /64 counts as one source.
func TestPerSourceCap(t *testing.T) {
	tb := New(10, 2)
	x1 := admitFrom(t, tb, "2001:db8::1", NoEviction)
	y := admitFrom(t, tb, "198.51.100.1", NoEviction)
	x2 := admitFrom(t, tb, "2001:db8::2", NoEviction)
	x1.e.Hear()

	x3 := admitFrom(t, tb, "2001:db8::3", AtSourceLimit) // x2 is silent
	checkOpen(t, "xyxx", []admitted{x1, y, x2, x3}, true, true, false, true)

	x3.e.Hear()
	x4 := admitFrom(t, tb, "2001:db8::4", AtSourceLimit) // x1 is the oldest
	checkOpen(t, "xyxx", []admitted{x1, y, x3, x4}, false, true, true, true)

	other := admitFrom(t, tb, "2001:db8:0:1::1", NoEviction) // another /64
	checkOpen(t, "yxxo", []admitted{y, x3, x4, other}, true, true, true, true)
	if n := tb.bySource[netip.MustParsePrefix("2001:db8::/64")]; n != 2 {
		t.Errorf("source count %d, want 2", n)
	}
}

// Done reports false for an evicted entry and for one already done, and
// frees the entry's place.
func TestDone(t *testing.T) {
	tb := New(2, 2)
	a := admitFrom(t, tb, "192.0.2.1", NoEviction)
	b := admitFrom(t, tb, "192.0.2.1", NoEviction)
	c := admitFrom(t, tb, "192.0.2.1", AtSourceLimit)
	if tb.Done(a.e) {
		t.Error("Done of an evicted entry reported true")
	}
	if !tb.Done(b.e) {
		t.Error("Done of a live entry reported false")
	}
	if tb.Done(b.e) {
		t.Error("second Done reported true")
	}
	if b.c.closed.Load() {
		t.Error("Done closed the connection")
	}
	d := admitFrom(t, tb, "192.0.2.1", NoEviction) // b's place is free
	checkOpen(t, "cd", []admitted{c, d}, true, true)
	if len(tb.bySource) != 1 || tb.entries.Len() != 2 {
		t.Errorf("%d sources, %d entries, want 1 and 2", len(tb.bySource), tb.entries.Len())
	}
	tb.Done(c.e)
	tb.Done(d.e)
	if len(tb.bySource) != 0 || tb.entries.Len() != 0 {
		t.Errorf("%d sources, %d entries left after all done", len(tb.bySource), tb.entries.Len())
	}
}

func TestCloseAll(t *testing.T) {
	tb := New(4, 4)
	a := admitFrom(t, tb, "192.0.2.1", NoEviction)
	b := admitFrom(t, tb, "192.0.2.2", NoEviction)
	tb.Done(b.e)
	tb.CloseAll()
	checkOpen(t, "ab", []admitted{a, b}, false, true)
	if !tb.Done(a.e) {
		t.Error("CloseAll took the entry off the table")
	}
}

// Hear races with Admit's scan for a victim (run with -race).
func TestHearConcurrent(t *testing.T) {
	tb := New(8, 8)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 200 {
				e, _ := tb.Admit(from("192.0.2." + string(rune('1'+i))))
				e.Hear()
				tb.Done(e)
			}
		})
	}
	wg.Wait()
	if n := tb.entries.Len(); n != 0 {
		t.Errorf("%d entries left", n)
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

func TestSourceOf(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{tcp("192.0.2.7:80"), "192.0.2.7/32"},
		{tcp("[::ffff:192.0.2.7]:80"), "192.0.2.7/32"},
		{tcp("[2001:db8:1:2:3:4:5:6]:80"), "2001:db8:1:2::/64"},
		{&net.UDPAddr{IP: net.ParseIP("2001:db8::9"), Port: 53}, "2001:db8::/64"},
	} {
		if got := SourceOf(tc.addr); got != netip.MustParsePrefix(tc.want) {
			t.Errorf("SourceOf(%v) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if got := SourceOf(pipeAddr{}); got.IsValid() {
		t.Errorf("SourceOf(pipe) = %v, want the zero prefix", got)
	}
	if got := SourceOf(nil); got.IsValid() {
		t.Errorf("SourceOf(nil) = %v, want the zero prefix", got)
	}
}
