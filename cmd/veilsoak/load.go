package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"veil/relay/testnet"
)

// The kinds of operation the soak mixes. Each HTTP kind ends its TCP
// connections in a different way, since that is where streams leaked.
const (
	// kindKeepAlive sends several requests over one connection, then drops
	// it by closing the transport's idle connections (the client closes
	// while the server would keep it open), as a browser does.
	kindKeepAlive = "keep-alive"
	// kindConnClose sends one request with "Connection: close": the
	// server closes first.
	kindConnClose = "conn-close"
	// kindClientClose sends one HTTP/1.1 request and closes the
	// connection after the response, while the server would keep it open.
	kindClientClose = "client-close"
	kindShare       = "share"
	kindFetch       = "fetch"
)

var kinds = []string{kindKeepAlive, kindConnClose, kindClientClose, kindShare, kindFetch}

// sizes are the /bytes/N answers fetched, small to medium, with weights.
var sizes = []struct {
	n      int64
	weight int
}{{1 << 10, 60}, {64 << 10, 30}, {1 << 20, 10}}

func pickSize(r *rand.Rand) int64 {
	total := 0
	for _, s := range sizes {
		total += s.weight
	}
	k := r.IntN(total)
	for _, s := range sizes {
		if k < s.weight {
			return s.n
		}
		k -= s.weight
	}
	return sizes[0].n
}

// maxLoggedFailures bounds the failures each kind logs in full, so that a
// proxy refusing everyone does not drown the report.
const maxLoggedFailures = 20

// Counts are one kind's totals.
type Counts struct {
	Ops      int64    `json:"ops"`
	Failures int64    `json:"failures"`
	Conns    int64    `json:"conns"` // SOCKS connections opened
	Bytes    int64    `json:"bytes"`
	MaxS     float64  `json:"max_s"`
	Errors   []string `json:"errors,omitempty"` // the first few, in full
}

// tally counts operations per kind; it is shared by every worker.
type tally struct {
	mu     sync.Mutex // guards by
	by     map[string]*Counts
	logf   func(format string, args ...any)
	closed atomic.Bool // the run was interrupted: errors are not failures
}

func newTally(logf func(string, ...any)) *tally {
	t := &tally{by: map[string]*Counts{}, logf: logf}
	for _, k := range kinds {
		t.by[k] = &Counts{}
	}
	return t
}

// done records one operation of kind that moved n bytes in d.
func (t *tally) done(kind string, n int64, d time.Duration, err error) {
	if err != nil && t.closed.Load() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.by[kind]
	c.Ops++
	c.Bytes += n
	c.MaxS = max(c.MaxS, d.Seconds())
	if err == nil {
		return
	}
	c.Failures++
	if len(c.Errors) < maxLoggedFailures {
		c.Errors = append(c.Errors, err.Error())
		t.logf("FAIL %s after %.1fs: %v", kind, d.Seconds(), err)
	} else if c.Failures%100 == 0 {
		t.logf("FAIL %s: %d failures so far (only the first %d are logged)", kind, c.Failures, maxLoggedFailures)
	}
}

func (t *tally) dialed(kind string) {
	t.mu.Lock()
	t.by[kind].Conns++
	t.mu.Unlock()
}

// snapshot copies the counts.
func (t *tally) snapshot() map[string]Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]Counts{}
	for k, c := range t.by {
		cc := *c
		cc.Errors = append([]string(nil), c.Errors...)
		out[k] = cc
	}
	return out
}

// worker runs HTTP operations through the SOCKS proxy, one at a time.
type worker struct {
	id      int
	socks   string
	web     netip.AddrPort
	host    string
	tally   *tally
	timeout time.Duration
	think   time.Duration
	rng     *rand.Rand
}

// run starts operations until phase ends; each one runs to its end (or
// its timeout) under ctx, so that ending a phase fails nothing.
func (w *worker) run(ctx, phase context.Context) {
	for phase.Err() == nil && ctx.Err() == nil {
		var err error
		switch k := w.rng.IntN(10); {
		case k < 4:
			err = w.keepAlive(ctx, 2+w.rng.IntN(5))
		case k < 7:
			err = w.connClose(ctx)
		default:
			err = w.clientClose(ctx)
		}
		pause := w.think
		if err != nil {
			pause = max(pause, failurePause)
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
		}
	}
}

// failurePause keeps a worker whose operations fail at once (a proxy
// refusing every client) from spinning: the failure rate stays a rate of
// attempts a client would make, and the machine stays usable.
const failurePause = time.Second

// credentials give half the operations the worker's own circuit (SOCKS
// isolation by username) and half the shared one.
func (w *worker) credentials() string {
	if w.rng.IntN(2) == 0 {
		return ""
	}
	return fmt.Sprintf("soak%d", w.id)
}

func (w *worker) dialer(kind, user string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		w.tally.dialed(kind)
		return testnet.DialSOCKS(ctx, w.socks, w.web, user, "x")
	}
}

func (w *worker) url(n int64) string { return fmt.Sprintf("http://%s/bytes/%d", w.host, n) }

// get fetches one URL with c and checks the body byte for byte.
func (w *worker) get(ctx context.Context, c *http.Client, n int64) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", w.url(n), nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /bytes/%d: %s", n, resp.Status)
	}
	if err := testnet.CheckPattern(resp.Body, n); err != nil {
		return fmt.Errorf("GET /bytes/%d: %w", n, err)
	}
	return nil
}

func (w *worker) keepAlive(ctx context.Context, requests int) error {
	tr := &http.Transport{DialContext: w.dialer(kindKeepAlive, w.credentials()), MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	for range requests {
		n := pickSize(w.rng)
		t0 := time.Now()
		err := w.get(ctx, c, n)
		w.tally.done(kindKeepAlive, n, time.Since(t0), err)
		if err != nil || ctx.Err() != nil {
			return err
		}
	}
	return nil
}

func (w *worker) connClose(ctx context.Context) error {
	tr := &http.Transport{DialContext: w.dialer(kindConnClose, w.credentials()), DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	n := pickSize(w.rng)
	t0 := time.Now()
	err := w.get(ctx, &http.Client{Transport: tr}, n)
	w.tally.done(kindConnClose, n, time.Since(t0), err)
	return err
}

// clientClose speaks HTTP/1.1 by hand: one request with no Connection
// header, the response read to its end, then a close by the client.
func (w *worker) clientClose(ctx context.Context) error {
	n := pickSize(w.rng)
	t0 := time.Now()
	err := func() error {
		ctx, cancel := context.WithTimeout(ctx, w.timeout)
		defer cancel()
		w.tally.dialed(kindClientClose)
		c, err := testnet.DialSOCKS(ctx, w.socks, w.web, w.credentials(), "x")
		if err != nil {
			return fmt.Errorf("socks connect: %w", err)
		}
		defer c.Close()
		dl, _ := ctx.Deadline()
		c.SetDeadline(dl)
		if _, err := fmt.Fprintf(c, "GET /bytes/%d HTTP/1.1\r\nHost: %s\r\nUser-Agent: veilsoak\r\n\r\n", n, w.host); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return fmt.Errorf("GET /bytes/%d: %w", n, err)
		}
		if resp.StatusCode != http.StatusOK || resp.Close {
			return fmt.Errorf("GET /bytes/%d: %s (close %v)", n, resp.Status, resp.Close)
		}
		if err := testnet.CheckPattern(io.LimitReader(resp.Body, n+1), n); err != nil {
			return fmt.Errorf("GET /bytes/%d: %w", n, err)
		}
		return nil
	}()
	w.tally.done(kindClientClose, n, time.Since(t0), err)
	return err
}
