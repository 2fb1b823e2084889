package dirserve

import (
	"net/netip"
	"testing"
	"time"
)

// TestLimiterBounded floods the limiter with distinct addresses: the table
// never holds more than its bound, and a client seen recently keeps its
// (empty) bucket while idle ones are dropped.
func TestLimiterBounded(t *testing.T) {
	const bound = 100
	l := newLimiter(2, bound) // burst 1
	busy := netip.MustParseAddr("198.51.100.1")
	if ok, _ := l.allow(busy, t0); !ok {
		t.Fatal("first request refused")
	}
	for i := range 100000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if ok, _ := l.allow(a, t0); !ok {
			t.Fatalf("new address %s refused", a)
		}
		if i%(bound/2) == 0 {
			// The busy client keeps asking, so it stays in the table
			// and stays limited.
			if ok, _ := l.allow(busy, t0); ok {
				t.Fatal("busy client allowed past its burst")
			}
		}
		if n := l.size(); n > bound {
			t.Fatalf("table holds %d entries, bound %d", n, bound)
		}
	}
	if l.lru.Len() != l.size() {
		t.Fatalf("list %d and map %d disagree", l.lru.Len(), l.size())
	}
}

func TestLimiterRefill(t *testing.T) {
	l := newLimiter(60, MaxClients) // burst 30, a token a second
	a := netip.MustParseAddr("2001:db8::1")
	for i := range 30 {
		if ok, _ := l.allow(a, t0); !ok {
			t.Fatalf("request %d within the burst refused", i+1)
		}
	}
	// Same /64, same bucket.
	ok, wait := l.allow(netip.MustParseAddr("2001:db8::2"), t0)
	if ok || wait != time.Second {
		t.Fatalf("past the burst: ok %v, wait %v; want refused, 1s", ok, wait)
	}
	if ok, _ := l.allow(a, t0.Add(time.Second)); !ok {
		t.Fatal("refused after a token came back")
	}
	// A long idle period refills to the burst, not beyond.
	n := 0
	for {
		if ok, _ := l.allow(a, t0.Add(time.Hour)); !ok {
			break
		}
		n++
	}
	if n != 30 {
		t.Fatalf("%d requests after an hour idle, want the burst of 30", n)
	}
	// A clock step backwards gives nothing.
	if ok, _ := l.allow(a, t0); ok {
		t.Fatal("clock going backwards gave a token")
	}
}
