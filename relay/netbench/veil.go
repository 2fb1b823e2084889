package netbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"veil/conf"
	"veil/directory"
	"veil/directory/dirclient"
	"veil/onion"
	"veil/relay/client"
	"veil/relay/path"
	"veil/relay/testnet"
)

// bench is one testnet under measurement.
type bench struct {
	o      Options
	sz     sizes
	r      *Results
	m      testnet.Manifest
	web    netip.AddrPort
	dc     *dirclient.Client
	cl     *client.Client
	sel    *path.Selector
	relays []int // relay PIDs
	veil   []int // every veil process: seeds, relays, proxy

	started time.Time  // when the testnet was started
	mu      sync.Mutex // guards the build failure counts in r
}

func measureVeil(ctx context.Context, o Options, r *Results) error {
	b := &bench{o: o, sz: sizesFor(o), r: r}

	logf(o.Log, "starting a testnet of %d relays and %d seed(s) with %s", o.Relays, o.Seeds, o.Binary)
	t0 := time.Now()
	b.started = t0
	n, err := testnet.Start(ctx, testnet.Options{Dir: filepath.Join(o.Dir, "testnet"), Relays: o.Relays, Seeds: o.Seeds, Binary: o.Binary})
	if err != nil {
		return fmt.Errorf("start the testnet: %w", err)
	}
	r.StartToFirstFetchS = time.Since(t0).Seconds()
	defer n.Stop()
	logf(o.Log, "testnet usable %.2f s after start (first request through the proxy)", r.StartToFirstFetchS)
	b.m = n.Manifest
	u, err := url.Parse(b.m.Web)
	if err != nil {
		return err
	}
	if b.web, err = netip.ParseAddrPort(u.Host); err != nil {
		return err
	}
	for _, p := range b.m.Relays {
		b.relays = append(b.relays, p.PID)
	}
	b.veil = append(b.veil, b.relays...)
	for _, p := range b.m.Seeds {
		b.veil = append(b.veil, p.PID)
	}
	b.veil = append(b.veil, b.m.Proxy.PID)

	// A client of its own, for what SOCKS hides: circuit builds and
	// streams on a chosen circuit.
	cfg, err := conf.LoadClient(b.m.ClientConfig)
	if err != nil {
		return err
	}
	seeds, err := dirclient.SeedsFromConfig(cfg.Seeds)
	if err != nil {
		return err
	}
	if b.dc, err = dirclient.New(dirclient.Options{Seeds: seeds}); err != nil {
		return err
	}
	defer b.dc.Close()
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = b.dc.Fetch(fctx)
	cancel()
	if err != nil {
		return fmt.Errorf("fetch the consensus: %w", err)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { b.dc.Run(runCtx) }) // keeps the view fresh (2 s consensus)
	defer wg.Wait()
	defer stopRun()
	if b.sel, err = path.NewSelector(path.Options{AllowSameSubnet: true}); err != nil {
		return err
	}
	b.cl = client.New(client.Options{View: b.dc.View, Paths: b.sel})
	defer b.cl.Close()

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"circuit build", b.circuitBuilds},
		{"idle-circuit memory", b.memory},
		{"1 KB fetches over a built circuit", b.fetches},
		{"1 KB fetches through SOCKS", b.socksFetches},
		{"single stream", b.singleStream},
		{"concurrent streams", b.concurrent},
		{"share and fetch", b.shareFetch},
	}
	var errs []error
	for _, s := range steps {
		if ctx.Err() != nil {
			break
		}
		if err := s.fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			r.Errors = append(r.Errors, s.name+": "+err.Error())
			logf(o.Log, "%s failed: %v", s.name, err)
		}
	}
	logf(o.Log, "stopping the testnet")
	return errors.Join(errs...)
}

func (b *bench) dest() path.Destination {
	return path.Destination{Addr: b.web.Addr(), Port: b.web.Port()}
}

func (b *bench) path() ([]directory.Entry, error) {
	v := b.dc.View()
	if v == nil {
		return nil, errors.New("no usable consensus view")
	}
	return b.sel.Path(v, b.dest())
}

// build makes one circuit to the web server's exit and times the Build
// that succeeded. A failed Build (right after start a relay may not yet
// hold the consensus that lists its neighbour, and refuses it) is counted
// in Results.BuildFailures and retried on a fresh path, up to 20 times.
func (b *bench) build(ctx context.Context) (*client.Circuit, time.Duration, error) {
	var last error
	for range 20 {
		hops, err := b.path()
		if err != nil {
			return nil, 0, err
		}
		t := time.Now()
		c, err := b.cl.Build(ctx, hops)
		d := time.Since(t)
		if err == nil {
			return c, d, nil
		}
		last = err
		b.mu.Lock()
		b.r.BuildFailures++
		if len(b.r.BuildErrors) < 10 {
			b.r.BuildErrors = append(b.r.BuildErrors, fmt.Sprintf("%s after start: %v", time.Since(b.started).Round(time.Millisecond), err))
		}
		b.mu.Unlock()
		if ctx.Err() != nil {
			break
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return nil, 0, last
}

// circuitBuilds times Build of fresh circuits, one at a time, each closed
// once built (as Tor's EXTENDCIRCUIT figure is taken). The first build
// also opens the TLS link to the guard and is reported apart.
func (b *bench) circuitBuilds(ctx context.Context) error {
	c, d, err := b.build(ctx)
	if err != nil {
		return err
	}
	c.Close()
	b.r.FirstBuildMS = ms(d)
	var raw []float64
	for range b.sz.circuits {
		c, d, err := b.build(ctx)
		if err != nil {
			return err
		}
		raw = append(raw, ms(d))
		c.Close()
		sleep(ctx, 20*time.Millisecond)
	}
	b.r.CircuitBuildMS = summarize(raw)
	s := b.r.CircuitBuildMS
	logf(b.o.Log, "circuit build (3 hybrid handshakes): median %.2f ms, p95 %.2f ms, n=%d (first, with the guard link: %.2f ms)",
		s.Median, s.P95, s.N, b.r.FirstBuildMS)
	return nil
}

// memory opens idle circuits and reads the relays' RSS before and after.
func (b *bench) memory(ctx context.Context) error {
	sleep(ctx, time.Second)
	mem := &Memory{Asked: b.sz.idle, BeforeKB: map[string]int64{}, AfterKB: map[string]int64{}, HopsPerRelay: map[string]int{}}
	for _, p := range b.m.Relays {
		kb, err := rssKB(p.PID)
		if err != nil {
			return err
		}
		mem.BeforeKB[p.Name] = kb
	}
	byAddr := map[string]string{}
	for _, p := range b.m.Relays {
		byAddr[p.ORAddr] = p.Name
	}
	var (
		mu    sync.Mutex
		circs []*client.Circuit
		next  atomic.Int64
	)
	defer func() {
		for _, c := range circs {
			c.Close()
		}
	}()
	// Two halves, the relays' RSS read after each: the first half also
	// pays one-off costs (heap growth, tables), the second shows what one
	// more circuit costs.
	buildUpTo := func(total int) {
		var wg sync.WaitGroup
		for range 4 { // a few builds in flight at once
			wg.Go(func() {
				for next.Add(1) <= int64(total) && ctx.Err() == nil {
					c, _, err := b.build(ctx)
					mu.Lock()
					if err != nil {
						mem.Failed++ // after retries
					} else {
						circs = append(circs, c)
						for _, h := range c.Hops() {
							mem.HopsPerRelay[byAddr[h.Descriptor.ORAddr.String()]]++
						}
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		next.Store(int64(total))
	}
	rss := func(into map[string]int64) (int64, error) {
		var sum int64
		for _, p := range b.m.Relays {
			kb, err := rssKB(p.PID)
			if err != nil {
				return 0, err
			}
			into[p.Name] = kb
			sum += kb
		}
		return sum, nil
	}
	t0 := time.Now()
	half := b.sz.idle / 2
	buildUpTo(half)
	mem.BuildS = time.Since(t0).Seconds()
	sleep(ctx, 2*time.Second)
	mem.HalfKB = map[string]int64{}
	halfSum, err := rss(mem.HalfKB)
	if err != nil {
		return err
	}
	mem.HalfCircuits = len(circs)
	t1 := time.Now()
	buildUpTo(b.sz.idle)
	mem.BuildS += time.Since(t1).Seconds()
	mem.Circuits = len(circs)
	if mem.Circuits == 0 {
		return errors.New("no circuit built")
	}
	sleep(ctx, 2*time.Second)
	afterSum, err := rss(mem.AfterKB)
	if err != nil {
		return err
	}
	var beforeSum int64
	for _, kb := range mem.BeforeKB {
		beforeSum += kb
	}
	grew := afterSum - beforeSum
	if d := mem.Circuits - mem.HalfCircuits; d > 0 {
		mem.MarginalKBPerCircuitHop = float64(afterSum-halfSum) / float64(3*d)
	}
	alive := 0
	for _, c := range circs {
		if c.Err() == nil {
			alive++
		}
	}
	mem.KBPerCircuitHop = float64(grew) / float64(3*mem.Circuits)
	mem.KBPer1000 = mem.KBPerCircuitHop * 1000
	b.r.Memory = mem
	logf(b.o.Log, "%d idle circuits built in %.1f s (%d failed, %d still open when measured): relays' RSS grew %d kB, %.2f kB per circuit per relay (second half alone: %.2f kB)",
		mem.Circuits, mem.BuildS, mem.Failed, alive, grew, mem.KBPerCircuitHop, mem.MarginalKBPerCircuitHop)
	if alive != mem.Circuits {
		return fmt.Errorf("%d of %d idle circuits closed before the measurement", mem.Circuits-alive, mem.Circuits)
	}
	return nil
}

// firstByte records when the first byte arrived.
type firstByte struct {
	r io.Reader
	t time.Time
}

func (f *firstByte) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && f.t.IsZero() {
		f.t = time.Now()
	}
	return n, err
}

// get sends GET /bytes/n on c and reads and checks the response; it
// returns when the request went out, when the first byte came back, and
// when the last did.
func (b *bench) get(c io.ReadWriter, n int64) (sent, first time.Time, err error) {
	fb := &firstByte{r: c}
	sent = time.Now()
	if _, err := fmt.Fprintf(c, "GET /bytes/%d HTTP/1.0\r\nHost: %s\r\n\r\n", n, b.web); err != nil {
		return sent, first, err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(fb, 64<<10), nil)
	if err != nil {
		return sent, fb.t, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return sent, fb.t, fmt.Errorf("status %s", resp.Status)
	}
	return sent, fb.t, b.check(resp.Body, n)
}

// check reads body to its end and checks it against the web server's
// pattern.
func (b *bench) check(body io.Reader, n int64) error {
	return testnet.CheckPattern(body, n)
}

// fetches opens streams on one built circuit and fetches 1 KB on each.
func (b *bench) fetches(ctx context.Context) error {
	c, _, err := b.build(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	var open, ttfb, total []float64
	for i := range b.sz.fetches + 3 { // 3 warm-ups
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		t0 := time.Now()
		s, err := c.Dial(fctx, onion.Begin{Addr: b.web.Addr(), Port: b.web.Port()})
		if err != nil {
			cancel()
			return err
		}
		connected := time.Now()
		stop := context.AfterFunc(fctx, func() { s.Close() })
		sent, first, err := b.get(s, 1024)
		done := time.Now()
		stop()
		s.Close()
		cancel()
		if err != nil {
			return err
		}
		if i < 3 {
			continue
		}
		open = append(open, ms(connected.Sub(t0)))
		ttfb = append(ttfb, ms(first.Sub(sent)))
		total = append(total, ms(done.Sub(t0)))
	}
	b.r.StreamOpenMS, b.r.TTFB1KMS, b.r.Fetch1KMS = summarize(open), summarize(ttfb), summarize(total)
	logf(b.o.Log, "1 KB over a built circuit: BEGIN->CONNECTED median %.2f ms; request->first byte median %.2f ms (p95 %.2f); whole fetch median %.2f ms (p95 %.2f), n=%d",
		b.r.StreamOpenMS.Median, b.r.TTFB1KMS.Median, b.r.TTFB1KMS.P95, b.r.Fetch1KMS.Median, b.r.Fetch1KMS.P95, len(total))
	return nil
}

// socksGet fetches /bytes/n through the proxy with user's circuit.
func (b *bench) socksGet(ctx context.Context, n int64, user string) (t0, sent, first time.Time, err error) {
	t0 = time.Now()
	conn, err := testnet.DialSOCKS(ctx, b.m.Socks, b.web, user, "x")
	if err != nil {
		return t0, sent, first, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	sent, first, err = b.get(conn, n)
	return t0, sent, first, err
}

// socksFetches is the 1 KB fetch as Tor's figure is taken with curl:
// through the SOCKS port, on a circuit the proxy already built.
func (b *bench) socksFetches(ctx context.Context) error {
	var total []float64
	for i := range b.sz.fetches + 3 {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		t0, _, _, err := b.socksGet(fctx, 1024, "bench-latency")
		d := time.Since(t0)
		cancel()
		if err != nil {
			return err
		}
		if i >= 3 {
			total = append(total, ms(d))
		}
	}
	b.r.Fetch1KSocksMS = summarize(total)
	logf(b.o.Log, "1 KB through SOCKS on a built circuit: median %.2f ms, p95 %.2f ms, n=%d",
		b.r.Fetch1KSocksMS.Median, b.r.Fetch1KSocksMS.P95, len(total))
	return nil
}

// singleStream downloads one big body through SOCKS, Runs times, after a
// warm-up fetch so the circuit is built, reading the relays' and the
// proxy's CPU time around each.
func (b *bench) singleStream(ctx context.Context) error {
	for run := range b.o.Runs {
		user := fmt.Sprintf("bench-single-%d", run)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, _, _, err := b.socksGet(wctx, 1024, user)
		cancel()
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		relay0 := map[string]float64{}
		for _, p := range b.m.Relays {
			relay0[p.Name], _ = cpuSeconds(p.PID)
		}
		proxy0, _ := cpuSeconds(b.m.Proxy.PID)
		win := startWindow(b.veil)
		dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		t0, sent, first, err := b.socksGet(dctx, b.sz.single, user)
		d := time.Since(t0)
		cancel()
		if err != nil {
			return err
		}
		load := win.load()
		tr := Transfer{Bytes: b.sz.single, Seconds: d.Seconds(), MBps: float64(b.sz.single) / d.Seconds() / MB,
			TTFBMS: ms(first.Sub(sent)), PerRelayCPUS: map[string]float64{}, Load: load}
		for _, p := range b.m.Relays {
			c, _ := cpuSeconds(p.PID)
			tr.PerRelayCPUS[p.Name] = c - relay0[p.Name]
			tr.RelayCPUS += c - relay0[p.Name]
		}
		proxy1, _ := cpuSeconds(b.m.Proxy.PID)
		tr.ProxyCPUS = proxy1 - proxy0
		mb := float64(b.sz.single) / MB
		tr.RelayCPUMsPerM = tr.RelayCPUS * 1000 / mb
		tr.AllCPUMsPerMB = (tr.RelayCPUS + tr.ProxyCPUS) * 1000 / mb
		b.r.Single = append(b.r.Single, tr)
		logf(b.o.Log, "single stream %d MiB: %.1f MB/s (%.2f s, TTFB %.1f ms); CPU relays %.2f s + proxy %.2f s = %.1f ms/MB (relays %.1f); cores: machine %.2f, veil %.2f, harness %.2f, other %.2f",
			b.sz.single>>20, tr.MBps, tr.Seconds, tr.TTFBMS, tr.RelayCPUS, tr.ProxyCPUS, tr.AllCPUMsPerMB, tr.RelayCPUMsPerM,
			load.MachineCores, load.VeilCores, load.HarnessCores, load.OtherCores)
	}
	return nil
}

// concurrent runs n downloads at once, each with its own SOCKS username
// and so its own circuit, built as part of the test (as Tor's isolated
// figure is taken); aggregate = bytes / wall time from the first dial to
// the last byte.
func (b *bench) concurrent(ctx context.Context) error {
	b.r.Concurrent = map[string][]Burst{}
	for _, n := range b.sz.concurrency {
		for run := range b.o.Runs {
			size := b.sz.concBytes[n]
			bu := Burst{Streams: n, BytesEach: size}
			var (
				mu    sync.Mutex
				wg    sync.WaitGroup
				rates []float64
			)
			dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			win := startWindow(b.veil)
			t0 := time.Now()
			for i := range n {
				wg.Go(func() {
					s0, _, _, err := b.socksGet(dctx, size, fmt.Sprintf("bench-iso%d-r%d-s%d", n, run, i))
					d := time.Since(s0)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						bu.Errors = append(bu.Errors, err.Error())
						return
					}
					bu.OK++
					rates = append(rates, float64(size)/d.Seconds()/MB)
				})
			}
			wg.Wait()
			wall := time.Since(t0)
			cancel()
			bu.Load = win.load()
			bu.WallS = wall.Seconds()
			bu.AggregateMBps = float64(int64(bu.OK)*size) / wall.Seconds() / MB
			bu.PerStreamMBps = summarize(rates)
			key := fmt.Sprintf("isolated_%d", n)
			b.r.Concurrent[key] = append(b.r.Concurrent[key], bu)
			logf(b.o.Log, "%d isolated streams x %d MiB: %.1f MB/s aggregate (%d/%d ok, %.2f s); cores: machine %.2f, veil %.2f, harness %.2f, other %.2f",
				n, size>>20, bu.AggregateMBps, bu.OK, n, bu.WallS, bu.Load.MachineCores, bu.Load.VeilCores, bu.Load.HarnessCores, bu.Load.OtherCores)
			if bu.OK != n {
				return fmt.Errorf("%d of %d streams failed: %v", n-bu.OK, n, bu.Errors[0])
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
