package relay

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"veil/conf"
	"veil/onion/keys"
	"veil/relay/internal/ratelimit"
	"veil/relay/testnet"
)

// benchCap is the cap BenchmarkRateCap sets: 20 MB/s (MB = 10^6 bytes).
const benchCap = 20_000_000

// BenchmarkRateCap: three relays carry 8 isolated downloads at once (8
// circuits, each faster than 20 MB/s uncapped) in one process: real TLS
// links, onion layers, SOCKS. The one exit, which every circuit ends at,
// is capped at relay_bandwidth_rate = 20 MB/s; the other two are not, so
// the exit alone holds the traffic back (with every relay capped, each is
// the bottleneck in turn and the others bank tokens). Once the exit has
// spent its bucket's burst (20 MB, the rate: relay_bandwidth_burst = 0), it
// measures for 5 s what each relay's links wrote and read, counted by the
// limiter (they agree with the links' own counters), and the data the
// client received. Each relay
// relay2-out is the capped relay's figure: 20 MB/s ± 10 %; the others
// carry the same cells.
//
//	go test ./relay -run '^$' -bench RateCap -benchtime 1x -count 3
func BenchmarkRateCap(b *testing.B) {
	const streams = 8
	const capped = 2 // the exit
	const window = 5 * time.Second
	n := newTestNetwork(b, 1)
	want := map[keys.NodeID]bool{}
	var relays []*Relay
	for i := range 3 {
		if i == capped {
			n.relayEdit = func(c *conf.Relay) { c.RelayBandwidthRate = benchCap }
		}
		r := n.startRelay(fmt.Sprint("relay", i), i == capped)
		relays = append(relays, r)
		want[r.ID()] = true
	}
	ctx, ln, dst := benchProxy(b, n, want)

	// download keeps fetching on its own circuit (its own SOCKS user)
	// until ctx ends, adding what arrives to got.
	var mu sync.Mutex // guards got
	var got int64
	download := func(ctx context.Context, user string) error {
		for ctx.Err() == nil {
			c, err := testnet.DialSOCKS(ctx, ln.Addr().String(), dst, user, "x")
			if err != nil {
				return err
			}
			stop := context.AfterFunc(ctx, func() { c.Close() })
			fmt.Fprintf(c, "GET /bytes/%d HTTP/1.0\r\nHost: x\r\n\r\n", int64(1)<<40)
			resp, err := http.ReadResponse(bufio.NewReaderSize(c, 64<<10), nil)
			if err == nil {
				buf := make([]byte, 64<<10)
				for {
					k, err := resp.Body.Read(buf)
					mu.Lock()
					got += int64(k)
					mu.Unlock()
					if err != nil {
						break
					}
				}
			}
			stop()
			c.Close()
			if err != nil && ctx.Err() == nil && err != io.EOF {
				return err
			}
		}
		return nil
	}
	counted := func() (r, w [3]uint64, data int64) {
		for i, rl := range relays {
			r[i], w[i] = rl.limiter.Counted()
		}
		mu.Lock()
		defer mu.Unlock()
		return r, w, got
	}
	b.ResetTimer()
	for range b.N {
		begin := time.Now()
		dctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for i := range streams {
			wg.Go(func() {
				if err := download(dctx, fmt.Sprint("bench", i)); err != nil && dctx.Err() == nil {
					b.Error(err)
				}
			})
		}
		// The bucket starts full, and the downloads take a while to
		// reach the cap (longer on a loaded machine): measure only once
		// the exit's write bucket is spent.
		for relays[capped].limiter.Available(ratelimit.Write) > float64(ratelimit.MinBurst) {
			if time.Since(begin) > time.Minute {
				b.Fatal("the exit never spent its burst: the downloads do not reach the cap on this machine")
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.ReportMetric(time.Since(begin).Seconds(), "s-to-drain")
		r0, w0, d0 := counted()
		start := time.Now()
		time.Sleep(window)
		r1, w1, d1 := counted()
		secs := time.Since(start).Seconds()
		stop()
		wg.Wait()
		for i := range relays {
			b.ReportMetric(float64(w1[i]-w0[i])/secs/1e6, fmt.Sprintf("relay%d-out-MB/s", i))
			b.ReportMetric(float64(r1[i]-r0[i])/secs/1e6, fmt.Sprintf("relay%d-in-MB/s", i))
		}
		b.ReportMetric(float64(d1-d0)/secs/1e6, "data-MB/s")
	}
}
