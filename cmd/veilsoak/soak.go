package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"veil/relay/testnet"
)

// options say how to soak.
type options struct {
	veil        string
	dir         string // work directory
	duration    time.Duration
	warmup      time.Duration
	settle      time.Duration
	every       time.Duration // between periodic samples
	concurrency int
	think       time.Duration
	opTimeout   time.Duration
	shareEvery  time.Duration
	shareSize   int64
	logf        func(format string, args ...any)
}

// soak is one run against one testnet.
type soak struct {
	o     options
	m     testnet.Manifest
	procs []Proc
	tally *tally
	t0    time.Time

	mu    sync.Mutex // guards trace
	trace [][]Sample // per process, the periodic samples
}

// run loads the network for the warm-up, lets it settle, samples every
// process, loads it for the rest of the duration, lets it settle again and
// samples every process a second time. Sampling only a quiet network
// keeps connections in flight out of the growth figures.
func (s *soak) run(ctx context.Context) (*Report, error) {
	u, err := url.Parse(s.m.Web)
	if err != nil {
		return nil, fmt.Errorf("web server %q: %w", s.m.Web, err)
	}
	web, err := netip.ParseAddrPort(u.Host)
	if err != nil {
		return nil, fmt.Errorf("web server %q: %w", s.m.Web, err)
	}
	s.tally = newTally(s.o.logf)
	s.trace = make([][]Sample, len(s.procs))
	s.t0 = time.Now()
	r := &Report{Started: s.t0, WarmupS: s.o.warmup.Seconds(), SettleS: s.o.settle.Seconds(), Procs: make([]ProcReport, len(s.procs))}
	for i, p := range s.procs {
		r.Procs[i].Proc = p
		r.Procs[i].Idle = sample(ctx, p)
	}

	sampling, stopSampling := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Go(func() { s.sampleEvery(sampling) })
	defer bg.Wait()
	defer stopSampling()

	load := func(d time.Duration) {
		phase, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		var wg sync.WaitGroup
		for i := range s.o.concurrency {
			w := &worker{id: i, socks: s.m.Socks, web: web, host: u.Host, tally: s.tally,
				timeout: s.o.opTimeout, think: s.o.think, rng: rand.New(rand.NewPCG(uint64(s.t0.UnixNano()), uint64(i)))}
			wg.Go(func() { w.run(ctx, phase) })
		}
		if s.o.shareEvery > 0 {
			sh := &sharer{veil: s.o.veil, config: s.m.ClientConfig, dir: s.o.dir, size: s.o.shareSize,
				timeout: 2 * s.o.opTimeout, tally: s.tally}
			wg.Go(func() { sh.run(ctx, phase, s.o.shareEvery) })
		}
		wg.Wait()
	}
	settle := func() {
		select {
		case <-time.After(s.o.settle):
		case <-ctx.Done():
		}
	}
	s.o.logf("warm-up: %s of load before the start sample", s.o.warmup)
	load(s.o.warmup)
	settle()
	startAt := time.Now()
	for i, p := range s.procs {
		r.Procs[i].Start = sample(ctx, p)
	}
	s.o.logf("start sample taken; %s of load follow", s.o.duration-s.o.warmup)
	load(s.o.duration - s.o.warmup)
	r.DurationS = time.Since(s.t0).Seconds() - s.o.settle.Seconds()
	settle()
	if ctx.Err() != nil {
		s.tally.closed.Store(true)
		return nil, ctx.Err()
	}
	for i, p := range s.procs {
		r.Procs[i].End = sample(ctx, p)
	}
	window := time.Since(startAt)
	stopSampling()
	bg.Wait()
	s.mu.Lock()
	for i := range r.Procs {
		r.Procs[i].Trace = s.trace[i]
	}
	s.mu.Unlock()
	r.Kinds = s.tally.snapshot()
	r.finish(window)
	return r, nil
}

// sampleEvery samples every process periodically, under load, for the
// JSON trace and a progress line.
func (s *soak) sampleEvery(ctx context.Context) {
	tick := time.NewTicker(s.o.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var line strings.Builder
		var ops, fails int64
		for _, c := range s.tally.snapshot() {
			ops += c.Ops
			fails += c.Failures
		}
		fmt.Fprintf(&line, "%s ops %d failures %d |", time.Since(s.t0).Round(time.Second), ops, fails)
		for i, p := range s.procs {
			smp := sample(ctx, p)
			s.mu.Lock()
			s.trace[i] = append(s.trace[i], smp)
			s.mu.Unlock()
			if !smp.Alive {
				fmt.Fprintf(&line, " %s gone", p.Name)
				continue
			}
			fmt.Fprintf(&line, " %s %dfd/%.0fMB", p.Name, smp.FDs, float64(smp.RSSBytes)/1e6)
			if smp.Goroutines >= 0 {
				fmt.Fprintf(&line, "/%dg", smp.Goroutines)
			}
			if smp.CloseWait > 0 {
				fmt.Fprintf(&line, "/%dcw", smp.CloseWait)
			}
		}
		s.o.logf("%s", line.String())
	}
}

// newSoak names the processes of the testnet m.
func newSoak(o options, m testnet.Manifest) *soak {
	return &soak{o: o, m: m, procs: procsOf(m)}
}

// logTo is a logf that writes "veilsoak: ..." lines with the time.
func logTo(f *os.File) func(string, ...any) {
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(f, "veilsoak: %s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}
