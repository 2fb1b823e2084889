package relay

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"veil/directory"
	"veil/onion/keys"
	"veil/relay/client"
	"veil/relay/path"
	"veil/relay/socks"
	"veil/relay/testnet"
)

// BenchmarkDownload is the data path of `veilbench`'s single stream with
// every party in this process: a web server, three relays, the client and
// its SOCKS front door, each byte through TLS on four links and three
// onion layers. It reports the process's CPU time per MB moved, the figure
// that decides throughput when all of it shares two cores; with
// -cpuprofile it shows where that time goes.
//
//	go test ./relay -run '^$' -bench Download -benchtime 5x -cpuprofile cpu.out
func BenchmarkDownload(b *testing.B) {
	const size = 64 << 20
	n := newTestNetwork(b, 1)
	want := map[keys.NodeID]bool{}
	for i := range 4 {
		want[n.startRelay(fmt.Sprint("relay", i), i%2 == 1).ID()] = true
	}
	ctx, ln, dst := benchProxy(b, n, want)

	fetch := func(n int64) {
		c, err := testnet.DialSOCKS(ctx, ln.Addr().String(), dst, "bench", "x")
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /bytes/%d HTTP/1.0\r\nHost: x\r\n\r\n", n)
		resp, err := http.ReadResponse(bufio.NewReaderSize(c, 64<<10), nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := testnet.CheckPattern(resp.Body, n); err != nil {
			b.Fatal(err)
		}
	}
	fetch(1 << 20) // builds the circuit
	b.SetBytes(size)
	b.ResetTimer()
	cpu0, calls0 := cpuTime(), ioCalls()
	for range b.N {
		fetch(size)
	}
	b.StopTimer()
	mb := float64(b.N) * size / 1e6
	b.ReportMetric((cpuTime()-cpu0).Seconds()*1000/mb, "cpu-ms/MB")
	if calls0 >= 0 {
		b.ReportMetric(float64(ioCalls()-calls0)/mb, "rw-calls/MB")
	}
}

// BenchmarkDownloadIsolated is veilbench's "32 isolated streams": 32
// fetches at once, each on its own circuit (a SOCKS username apiece), so
// the relays carry 32 circuits on their links at once. Its CPU time per
// MB is the figure to compare between versions on a busy machine, where
// the MB/s of a whole testnet says little.
//
//	go test ./relay -run '^$' -bench DownloadIsolated -benchtime 3x -cpuprofile cpu.out
func BenchmarkDownloadIsolated(b *testing.B) {
	const streams, size = 32, 8 << 20
	n := newTestNetwork(b, 1)
	want := map[keys.NodeID]bool{}
	for i := range 4 {
		want[n.startRelay(fmt.Sprint("relay", i), i%2 == 1).ID()] = true
	}
	ctx, ln, dst := benchProxy(b, n, want)

	fetch := func(user string, n int64) error {
		c, err := testnet.DialSOCKS(ctx, ln.Addr().String(), dst, user, "x")
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /bytes/%d HTTP/1.0\r\nHost: x\r\n\r\n", n)
		resp, err := http.ReadResponse(bufio.NewReaderSize(c, 64<<10), nil)
		if err != nil {
			return err
		}
		return testnet.CheckPattern(resp.Body, n)
	}
	all := func(round int, n int64) {
		errs := make(chan error, streams)
		for i := range streams {
			go func() { errs <- fetch(fmt.Sprint("bench", round, "-", i), n) }()
		}
		for range streams {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
	}
	all(-1, 1<<10) // the guard's link, and a first circuit each
	b.SetBytes(streams * size)
	b.ResetTimer()
	cpu0, calls0 := cpuTime(), ioCalls()
	for i := range b.N {
		all(i, size) // fresh circuits each round, as veilbench's
	}
	b.StopTimer()
	mb := float64(b.N) * streams * size / 1e6
	b.ReportMetric((cpuTime()-cpu0).Seconds()*1000/mb, "cpu-ms/MB")
	if calls0 >= 0 {
		b.ReportMetric(float64(ioCalls()-calls0)/mb, "rw-calls/MB")
	}
}

// benchProxy starts what a benchmark downloads through: a client over
// the view of n once it lists every relay in want, its SOCKS5 front door
// on 127.0.0.1, and a pattern web server. It returns a context the
// benchmark's cleanup cancels, the SOCKS listener and the web server.
func benchProxy(b *testing.B, n *testNetwork, want map[keys.NodeID]bool) (context.Context, net.Listener, netip.AddrPort) {
	v := waitView(b, n.client(b), want)
	sel, err := path.NewSelector(path.Options{AllowSameSubnet: true})
	if err != nil {
		b.Fatal(err)
	}
	cl := client.New(client.Options{View: func() *directory.View { return v }, Paths: sel})
	b.Cleanup(cl.Close)
	opts := socks.DefaultOptions()
	opts.Connector = cl
	srv, err := socks.NewServer(opts)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go srv.Serve(ctx, ln)
	return ctx, ln, patternServer(b)
}

// patternServer serves /bytes/N with testnet's pattern, as veilbench's web
// server does.
func patternServer(b *testing.B) netip.AddrPort {
	block := make([]byte, 64<<10) // one period of the pattern
	for i := range block {
		block[i] = testnet.Pattern(int64(i))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Path[len("/bytes/"):], 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		for n > 0 {
			k := min(n, int64(len(block)))
			if _, err := w.Write(block[:k]); err != nil {
				return
			}
			n -= k
		}
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return netip.MustParseAddrPort(ln.Addr().String())
}

// ioCalls is how many read and write system calls this process has made
// (Linux), or -1.
func ioCalls() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	var n int64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		if k == "syscr" || k == "syscw" {
			x, _ := strconv.ParseInt(v, 10, 64)
			n += x
		}
	}
	return n
}

// cpuTime is the user and system time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
