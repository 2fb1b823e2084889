package path

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"

	"veil/directory"
)

// The draws below use fixed seeds, so they are deterministic; the bounds
// are loose (many standard deviations) so that a change of seed or of the
// draw's arithmetic does not make them flaky.

// shares draws n times from cands and returns each label's share.
func shares(t *testing.T, n int, cands []directory.Entry, limit uint64) map[string]float64 {
	t.Helper()
	rand := shake("draws " + t.Name())
	count := map[string]int{}
	for range n {
		e, err := pick(rand, cands, flat(limit), posMiddle)
		if err != nil {
			t.Fatal(err)
		}
		count[labelOf(e)]++
	}
	out := map[string]float64{}
	for l, c := range count {
		out[l] = float64(c) / float64(n)
	}
	return out
}

// flat is draw weights with the cap limit and no position weighting.
func flat(limit uint64) drawWeights {
	dw := drawWeights{limit: limit}
	for p := range dw.w {
		for c := range dw.w[p] {
			dw.w[p][c] = 1
		}
	}
	return dw
}

func checkShares(t *testing.T, got, want map[string]float64, tol float64) {
	t.Helper()
	for l, w := range want {
		if math.Abs(got[l]-w) > tol {
			t.Errorf("%s drawn %.3f of the time, want %.3f ± %.2f (all: %v)", l, got[l], w, tol, got)
		}
	}
}

func TestPickFollowsBandwidth(t *testing.T) {
	cands := entries(t,
		relay{label: "a", addr: "10.1.0.1", flags: middleFlags, bw: 1 << 20},
		relay{label: "b", addr: "10.2.0.1", flags: middleFlags, bw: 2 << 20},
		relay{label: "c", addr: "10.3.0.1", flags: middleFlags, bw: 3 << 20},
		relay{label: "d", addr: "10.4.0.1", flags: middleFlags, bw: 4 << 20},
	)
	got := shares(t, 40000, cands, weightCap(cands))
	checkShares(t, got, map[string]float64{"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}, 0.02)
}

func TestWeightCap(t *testing.T) {
	// Four honest relays and one that claims a thousand times as much:
	// it is weighted as CapFactor times the median, no more.
	cands := entries(t,
		relay{label: "a", addr: "10.1.0.1", flags: middleFlags, bw: 10 << 20},
		relay{label: "b", addr: "10.2.0.1", flags: middleFlags, bw: 10 << 20},
		relay{label: "c", addr: "10.3.0.1", flags: middleFlags, bw: 10 << 20},
		relay{label: "d", addr: "10.4.0.1", flags: middleFlags, bw: 10 << 20},
		relay{label: "liar", addr: "10.5.0.1", flags: middleFlags, bw: 10000 << 20},
	)
	limit := weightCap(cands)
	if limit != CapFactor*(10<<20) {
		t.Fatalf("cap %d, want %d", limit, CapFactor*(10<<20))
	}
	got := shares(t, 20000, cands, limit)
	liar := float64(CapFactor) / (CapFactor + 4)
	checkShares(t, got, map[string]float64{"liar": liar, "a": (1 - liar) / 4}, 0.03)

	// Bounds: no relays, zero bandwidth, absurd bandwidth.
	if c := weightCap(nil); c != 1 {
		t.Errorf("cap of nothing: %d", c)
	}
	huge := entries(t, relay{label: "h", addr: "10.6.0.1", flags: middleFlags, bw: math.MaxUint64})
	if c := weightCap(huge); c > maxWeight || c == 0 {
		t.Errorf("cap %d for a relay claiming 2^64-1, want at most %d", c, uint64(maxWeight))
	}
	if w := weight(huge[0], weightCap(huge)); w > maxWeight {
		t.Errorf("weight %d above maxWeight", w)
	}
}

func TestZeroBandwidthStillDrawn(t *testing.T) {
	// A relay that reports nothing weighs 1, so among relays that all
	// report nothing each is drawn alike.
	es := entries(t,
		relay{label: "a", addr: "10.1.0.1", flags: middleFlags},
		relay{label: "b", addr: "10.2.0.1", flags: middleFlags},
	)
	for i := range es {
		// The descriptors are signed; only the weight is under test.
		d := *es[i].Descriptor
		d.Bandwidth = 0
		es[i].Descriptor = &d
	}
	got := shares(t, 4000, es, weightCap(es))
	checkShares(t, got, map[string]float64{"a": 0.5, "b": 0.5}, 0.05)
}

func TestPathMiddleFollowsBandwidth(t *testing.T) {
	v := view(entries(t,
		relay{label: "g", addr: "10.1.0.1", flags: guardFlags},
		relay{label: "e", addr: "10.2.0.1", flags: exitFlags},
		relay{label: "m5", addr: "10.3.0.1", flags: middleFlags, bw: 5 << 20},
		relay{label: "m10", addr: "10.4.0.1", flags: middleFlags, bw: 10 << 20},
		relay{label: "m20", addr: "10.5.0.1", flags: middleFlags, bw: 20 << 20},
	)...)
	s := newSelector(t, Options{})
	const n = 4000
	count := map[string]int{}
	for range n {
		p, err := s.Path(v, web)
		if err != nil {
			t.Fatal(err)
		}
		count[labelOf(p[1])]++
	}
	got := map[string]float64{}
	for l, c := range count {
		got[l] = float64(c) / n
	}
	checkShares(t, got, map[string]float64{"m5": 5.0 / 35, "m10": 10.0 / 35, "m20": 20.0 / 35}, 0.04)
}

func TestGuardChoiceFollowsBandwidth(t *testing.T) {
	v := view(entries(t,
		relay{label: "slow", addr: "10.1.0.1", flags: guardFlags, bw: 10 << 20},
		relay{label: "fast", addr: "10.2.0.1", flags: guardFlags, bw: 30 << 20},
	)...)
	const n = 2000
	count := map[string]int{}
	for i := range n {
		s := newSelector(t, Options{Rand: shake(fmt.Sprint("client ", i))})
		g, err := s.Guard(v)
		if err != nil {
			t.Fatal(err)
		}
		count[labelOf(g)]++
	}
	got := map[string]float64{"slow": float64(count["slow"]) / n, "fast": float64(count["fast"]) / n}
	checkShares(t, got, map[string]float64{"slow": 0.25, "fast": 0.75}, 0.05)
}

func TestUniform(t *testing.T) {
	rand := shake("uniform")
	var count [3]int
	for range 30000 {
		v, err := uniform(rand, 3)
		if err != nil {
			t.Fatal(err)
		}
		count[v]++
	}
	for i, c := range count {
		if c < 9500 || c > 10500 {
			t.Errorf("value %d drawn %d times of 30000", i, c)
		}
	}
	// The largest n: every value is in range.
	for range 100 {
		if v, err := uniform(rand, math.MaxUint64); err != nil || v == math.MaxUint64 {
			t.Fatalf("uniform(max) = %d, %v", v, err)
		}
	}
	// A failing source is an error, not a biased or zero draw.
	if _, err := uniform(strings.NewReader("short"), 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short source: %v", err)
	}
	s := newSelector(t, Options{Rand: strings.NewReader("")})
	if _, err := s.Guard(network(t)); err == nil || errors.Is(err, ErrNoGuard) {
		t.Fatalf("empty source: %v", err)
	}
}

// TestMeasuredWeightBeatsClaim: a relay that claims a thousand times its
// rate but was measured like the others is drawn like the others; its
// claim only caps. A relay nobody measured counts for
// UnmeasuredBandwidth whatever it claims.
func TestMeasuredWeightBeatsClaim(t *testing.T) {
	cands := entries(t,
		relay{label: "a", addr: "10.1.0.1", flags: middleFlags, bw: 10 << 20},
		relay{label: "b", addr: "10.2.0.1", flags: middleFlags, bw: 10 << 20},
		relay{label: "c", addr: "10.3.0.1", flags: middleFlags, bw: 10 << 20},
		relay{label: "liar", addr: "10.5.0.1", flags: middleFlags, bw: 10000 << 20, measured: 10 << 20},
		relay{label: "slowclaim", addr: "10.6.0.1", flags: middleFlags, bw: 5 << 20, measured: 10 << 20},
		relay{label: "new", addr: "10.7.0.1", flags: middleFlags, bw: 10000 << 20, unmeasured: true},
	)
	if w := bandwidth(cands[3]); w != 10<<20 {
		t.Errorf("liar counts for %d, want its measured %d", w, 10<<20)
	}
	if w := bandwidth(cands[4]); w != 5<<20 {
		t.Errorf("a relay measured above its claim counts for %d, want the claim %d", w, 5<<20)
	}
	if w := bandwidth(cands[5]); w != UnmeasuredBandwidth {
		t.Errorf("an unmeasured relay counts for %d, want %d", w, UnmeasuredBandwidth)
	}
	got := shares(t, 40000, cands, weightCap(cands))
	total := 4*float64(10<<20) + float64(5<<20) + UnmeasuredBandwidth
	checkShares(t, got, map[string]float64{"liar": float64(10<<20) / total, "a": float64(10<<20) / total}, 0.02)
}
