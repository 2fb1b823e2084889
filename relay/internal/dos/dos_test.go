package dos

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// circ is a circuit that closes when told.
type circ struct{ closed atomic.Bool }

func (c *circ) Closed() bool { return c.closed.Load() }

var t0 = time.Unix(1_700_000_000, 0)

func key(ip string, relay bool) Key {
	return KeyOf(&net.TCPAddr{IP: net.ParseIP(ip), Port: 4321}, relay)
}

// admit asks for one circuit and holds it if admitted.
func admit(t *testing.T, tb *Table, k Key, now time.Time) (*circ, Verdict) {
	t.Helper()
	r, v, _ := tb.Admit(k, now)
	if v != Admitted {
		return nil, v
	}
	c := &circ{}
	r.Hold(c)
	return c, v
}

// One peer at its share is refused; another address, and the same address
// as a relay, are not; a circuit that closes gives its place back.
func TestShareIsPerPeer(t *testing.T) {
	lim := Limits{Share: 3}
	tb := New(lim, Limits{Share: 5})
	a, b := key("192.0.2.1", false), key("192.0.2.2", false)
	var held []*circ
	for i := range 3 {
		c, v := admit(t, tb, a, t0)
		if v != Admitted {
			t.Fatalf("circuit %d: %v", i, v)
		}
		held = append(held, c)
	}
	if _, v := admit(t, tb, a, t0); v != OverShare {
		t.Fatalf("fourth circuit from a: %v, want share", v)
	}
	if _, v := admit(t, tb, b, t0); v != Admitted {
		t.Fatalf("another address: %v", v)
	}
	for i := range 5 {
		if _, v := admit(t, tb, key("192.0.2.1", true), t0); v != Admitted {
			t.Fatalf("a relay at a's address, circuit %d: %v", i, v)
		}
	}
	held[0].closed.Store(true)
	if _, v := admit(t, tb, a, t0.Add(pruneEvery)); v != Admitted {
		t.Fatalf("after a circuit closed: %v", v)
	}
	if got := tb.Open(a); got != 3 {
		t.Fatalf("a holds %d, want 3", got)
	}
}

// A reservation counts until it is held or cancelled, so CREATEs whose
// handshakes are in progress cannot overrun the share.
func TestReservationCounts(t *testing.T) {
	tb := New(Limits{Share: 2}, Limits{Share: 2})
	a := key("192.0.2.1", false)
	r1, _, _ := tb.Admit(a, t0)
	r2, _, _ := tb.Admit(a, t0)
	if _, v, _ := tb.Admit(a, t0); v != OverShare {
		t.Fatalf("third with two reserved: %v", v)
	}
	r1.Cancel()
	r3, v, _ := tb.Admit(a, t0)
	if v != Admitted {
		t.Fatalf("after a cancel: %v", v)
	}
	r2.Hold(&circ{})
	r3.Hold(&circ{})
	if got := tb.Open(a); got != 2 {
		t.Fatalf("open %d, want 2", got)
	}
}

// The bucket lets a burst through, then the rate; a refusal takes no
// token, so a peer that keeps trying still gets the rate.
func TestRateAndBurst(t *testing.T) {
	tb := New(Limits{Share: 1000, Rate: 10, Burst: 5}, Limits{Share: 1})
	a := key("2001:db8::1", false)
	for i := range 5 {
		if _, v := admit(t, tb, a, t0); v != Admitted {
			t.Fatalf("burst %d: %v", i, v)
		}
	}
	if _, v := admit(t, tb, a, t0); v != OverRate {
		t.Fatalf("past the burst: %v, want rate", v)
	}
	// 10 a second: one token per 100 ms, however often it is asked.
	admitted := 0
	for ms := 1; ms <= 1000; ms++ {
		if _, v := admit(t, tb, a, t0.Add(time.Duration(ms)*time.Millisecond)); v == Admitted {
			admitted++
		}
	}
	if admitted != 10 {
		t.Fatalf("%d admitted in a second at 10/s", admitted)
	}
	// The same /64 is the same peer; the next /64 is not.
	if _, v := admit(t, tb, key("2001:db8::ffff", false), t0.Add(time.Second)); v != OverRate {
		t.Fatalf("another address in the /64: %v, want rate", v)
	}
	if _, v := admit(t, tb, key("2001:db8:0:1::1", false), t0.Add(time.Second)); v != Admitted {
		t.Fatalf("the next /64: %v", v)
	}
}

// A loopback peer has no rate limit but keeps its share.
func TestLoopbackHasNoRateLimit(t *testing.T) {
	tb := New(Limits{Share: 50, Rate: 1, Burst: 1}, Limits{Share: 50, Rate: 1, Burst: 1})
	for _, ip := range []string{"127.0.0.1", "::1"} {
		for _, relay := range []bool{false, true} {
			k := key(ip, relay)
			for i := range 50 {
				if _, v := admit(t, tb, k, t0); v != Admitted {
					t.Fatalf("%s relay=%v, CREATE %d: %v", ip, relay, i, v)
				}
			}
			if _, v := admit(t, tb, k, t0); v != OverShare {
				t.Fatalf("%s relay=%v past the share: %v", ip, relay, v)
			}
		}
	}
	if k := key("::1", false); k.Addr.Bits() != 128 {
		t.Fatalf("::1 keyed as %v", k.Addr)
	}
}

// Only the first refusal of a burst is reported: a flood logs once.
func TestReportOncePerBurst(t *testing.T) {
	tb := New(Limits{Share: 1}, Limits{Share: 1})
	a := key("192.0.2.1", false)
	admit(t, tb, a, t0)
	reports := 0
	now := t0
	for range 1000 {
		now = now.Add(10 * time.Millisecond)
		if _, _, report := tb.Admit(a, now); report {
			reports++
		}
	}
	if reports != 1 {
		t.Fatalf("%d reports in a 10 s burst, want 1", reports)
	}
	if _, _, report := tb.Admit(a, now.Add(quietAfter)); !report {
		t.Fatal("a refusal after a quiet spell was not reported")
	}
}

// A closed circuit is noticed no more than every pruneEvery while the
// peer is at its share, and at once by Sweep.
func TestPruneIsBounded(t *testing.T) {
	tb := New(Limits{Share: 1}, Limits{Share: 1})
	a := key("192.0.2.1", false)
	c, _ := admit(t, tb, a, t0)
	if _, v := admit(t, tb, a, t0); v != OverShare {
		t.Fatalf("at the share: %v", v)
	}
	c.closed.Store(true)
	if _, v := admit(t, tb, a, t0.Add(pruneEvery/2)); v != OverShare {
		t.Fatalf("within pruneEvery of the last look: %v", v)
	}
	if _, v := admit(t, tb, a, t0.Add(pruneEvery)); v != Admitted {
		t.Fatalf("pruneEvery later: %v", v)
	}
}

// Sweep forgets a peer once it holds nothing, its bucket is full again and
// its refusals are over; one that holds a circuit stays.
func TestSweepForgetsIdlePeers(t *testing.T) {
	tb := New(Limits{Share: 1, Rate: 1, Burst: 2}, Limits{Share: 1})
	a, b := key("192.0.2.1", false), key("192.0.2.2", false)
	ca, _ := admit(t, tb, a, t0)
	admit(t, tb, b, t0)
	tb.Admit(a, t0) // refused: a is at its share
	ca.closed.Store(true)
	tb.Sweep(t0.Add(time.Second))
	if tb.Peers() != 2 {
		t.Fatalf("%d peers right after a refusal, want 2", tb.Peers())
	}
	tb.Sweep(t0.Add(quietAfter))
	if tb.Peers() != 1 || tb.Open(b) != 1 {
		t.Fatalf("%d peers, b holds %d; want b alone, with its circuit", tb.Peers(), tb.Open(b))
	}
}

func TestKeyOf(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, "192.0.2.7/32"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7/32"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 1}, "2001:db8::/64"},
		{&net.UnixAddr{Name: "/x", Net: "unix"}, "invalid Prefix"},
		{nil, "invalid Prefix"},
	} {
		if got := KeyOf(tc.addr, false).Addr.String(); got != tc.want {
			t.Errorf("KeyOf(%v) = %s, want %s", tc.addr, got, tc.want)
		}
	}
	if c, r := DefaultLimits(4096); c.Share != 512 || r.Share != 2048 {
		t.Errorf("shares for 4096: %d, %d", c.Share, r.Share)
	}
	if c, _ := DefaultLimits(8); c.Share != MinShare {
		t.Errorf("share for 8: %d", c.Share)
	}
}
