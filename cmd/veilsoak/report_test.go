package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestPerHour(t *testing.T) {
	for _, c := range []struct {
		from, to float64
		window   time.Duration
		want     float64
	}{
		{10, 12, 6 * time.Minute, 20},
		{100, 90, 30 * time.Minute, -20},
		{5, 5, time.Hour, 0},
		{1, 2, 0, 0},
	} {
		if got := perHour(c.from, c.to, c.window); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("perHour(%v, %v, %v) = %v, want %v", c.from, c.to, c.window, got, c.want)
		}
	}
	if got := perMille(3, 1500); got != 2 {
		t.Errorf("perMille(3, 1500) = %v, want 2", got)
	}
	if got := perMille(0, 0); got != 0 {
		t.Errorf("perMille(0, 0) = %v", got)
	}
}

func TestReportChecks(t *testing.T) {
	alive := func(rss int64, fds, g int) Sample {
		return Sample{Alive: true, RSSBytes: rss, FDs: fds, Goroutines: g}
	}
	closeWait := func(s Sample, n int) Sample {
		s.CloseWait = n
		return s
	}
	r := &Report{
		Kinds: map[string]Counts{kindKeepAlive: {Ops: 600}, kindClientClose: {Ops: 400, Failures: 2}},
		Procs: []ProcReport{
			// 10 minutes: x6 to an hour.
			{Proc: Proc{Name: "relay1"}, Start: alive(30e6, 20, 50), End: alive(30.5e6, 21, 50)},               // 3 MB/h, 6 fds/h
			{Proc: Proc{Name: "proxy"}, Start: alive(20e6, 30, -1), End: closeWait(alive(21e6, 130, -1), 100)}, // 6 MB/h, 600 fds/h
			{Proc: Proc{Name: "relay2"}, Start: alive(30e6, 20, 50), End: Sample{Goroutines: -1}},              // exited
		},
	}
	r.finish(10 * time.Minute)
	if r.Ops != 1000 || r.Failures != 2 || r.PerMille != 2 {
		t.Fatalf("totals %d ops, %d failures, %v per 1000", r.Ops, r.Failures, r.PerMille)
	}
	p := r.Procs[0]
	if math.Abs(p.RSSH-3e6) > 1 || math.Abs(p.FDsH-6) > 1e-9 || p.GorH == nil || *p.GorH != 0 {
		t.Fatalf("relay1 growth %+v", p)
	}
	if r.Procs[1].GorH != nil || !r.Procs[2].Exited {
		t.Fatalf("proxy %+v, relay2 %+v", r.Procs[1], r.Procs[2])
	}
	want := []struct {
		pass   bool
		detail string
	}{
		{false, "2 of 1000"},
		{false, "relay2"},
		{false, "proxy +6.0 MB/h"},
		{false, "proxy +600/h"},
		{false, "proxy 100"},
	}
	if r.Pass || len(r.Checks) != len(want) {
		t.Fatalf("checks %+v", r.Checks)
	}
	for i, w := range want {
		c := r.Checks[i]
		if c.Pass != w.pass || !strings.Contains(c.Detail, w.detail) || strings.Contains(c.Detail, "relay1") {
			t.Errorf("check %q: pass %v, %q; want %v, %q", c.Target, c.Pass, c.Detail, w.pass, w.detail)
		}
	}
	var out strings.Builder
	r.write(&out)
	for _, s := range []string{"client-close", "relay2 (exited)", "FAIL  zero failures", "targets missed"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, out.String())
		}
	}

	// Within every target.
	r = &Report{
		Kinds: map[string]Counts{kindFetch: {Ops: 10}},
		Procs: []ProcReport{{Proc: Proc{Name: "seed1"}, Start: alive(10e6, 10, -1), End: alive(10.2e6, 11, -1)}},
	}
	r.finish(time.Hour)
	if !r.Pass {
		t.Fatalf("checks %+v", r.Checks)
	}
}

// TestRSSSlope: the fitted rate follows a steady climb and is not fooled
// by one high sample at the end as two endpoints are.
func TestRSSSlope(t *testing.T) {
	t0 := time.Now()
	var ss []Sample
	for i := range 11 { // 10 minutes, 1 MB an hour
		ss = append(ss, Sample{At: t0.Add(time.Duration(i) * time.Minute), Alive: true, RSSBytes: 20e6 + int64(i)*1e6/60})
	}
	if got, ok := rssSlope(ss); !ok || math.Abs(got-1e6) > 1 {
		t.Fatalf("slope %v, %v; want 1e6", got, ok)
	}
	flat := make([]Sample, 0, 11)
	for i := range 11 {
		flat = append(flat, Sample{At: t0.Add(time.Duration(i) * time.Minute), Alive: true, RSSBytes: 20e6})
	}
	flat[10].RSSBytes += 0.5e6 // one GC cycle's worth, at the end
	p := ProcReport{Start: flat[0], End: flat[10], Trace: flat[1:10]}
	if n := len(p.window()); n != 11 {
		t.Fatalf("window of %d samples, want 11", n)
	}
	r := &Report{Kinds: map[string]Counts{kindFetch: {Ops: 1}}, Procs: []ProcReport{p}}
	r.finish(10 * time.Minute)
	if got := r.Procs[0]; got.RSSEnd != 3e6 || got.RSSH >= got.RSSEnd || got.RSSH <= 0 {
		t.Fatalf("fit %v, ends %v: want the fit below the endpoints' 3 MB/h", got.RSSH, got.RSSEnd)
	}
	if _, ok := rssSlope(flat[:2]); ok {
		t.Fatal("a slope from two samples")
	}
}
