package main

import (
	"context"
	"net"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"veil/onion/keys"
)

const (
	// floodConns is how many idle connections the flood keeps open to
	// one port: the figure from the junk campaign (issue 12), past both
	// the SOCKS port's and the OR port's limits.
	floodConns = 2000
	// floodHeld tells a connection the server held (until its handshake
	// deadline) from one it refused or evicted at once. Only a held one is
	// dialled again, so the flood keeps the port as full as the server
	// lets it be for the whole test without becoming a connect storm.
	floodHeld = time.Second
	// idleWindow is how long the relay must stay in the consensus under
	// the flood: longer than any handshake deadline, old or new, so a
	// fix that only waits for the idle connections to time out fails.
	idleWindow = 15 * time.Second
	// idleHang detects a hang; it is not the property under test.
	idleHang = 3 * time.Minute
)

// TestIdleConnectionsLockNobodyOut (issue 12, item 3): thousands of idle
// connections to the proxy's SOCKS port or to a relay's OR port, kept open
// for as long as the server holds them, cost honest users nothing. Through
// the SOCKS port a new client still gets a page; on the OR port the seed's
// reachability probe still passes, so the relay stays in every consensus,
// and a new client still builds circuits through it as its guard.
func TestIdleConnectionsLockNobodyOut(t *testing.T) {
	raiseFileLimit(t, 2*floodConns+1024)
	_, m := startTestnet(t, 4)
	web := webAddr(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), idleHang)
	defer cancel()
	if err := fetch(ctx, m, web, 1000, ""); err != nil {
		t.Fatalf("fetch before any flood: %v", err)
	}

	t.Run("socks", func(t *testing.T) {
		f := startFlood(t, m.Socks, floodConns)
		// One attempt: the client must not be refused, not merely get in
		// after a retry once the idle connections time out.
		if err := fetch(ctx, m, web, 1000, ""); err != nil {
			t.Fatalf("an honest SOCKS client behind %d idle connections: %v", floodConns, err)
		}
		t.Logf("page fetched through the proxy; it holds %d of the %d idle connections", f.open.Load(), floodConns)
	})

	t.Run("or port", func(t *testing.T) {
		victim := m.Relays[0]
		seed := m.Seeds[0]
		seedID, err := keys.ParseNodeID(seed.ID)
		if err != nil {
			t.Fatal(err)
		}
		dir := &localNet{t: t, dirAddr: seed.DirAddr, seedID: seedID}
		if got, err := dir.relays(t); err != nil || !got[victim.Name] {
			t.Fatalf("consensus before the flood: %v, %v; want %s listed", got, err, victim.Name)
		}
		// A client of its own with the flooded relay as its only guard,
		// started under the flood, so its first link to the relay has to
		// get through the flooded OR port.
		mine := clientWithGuards(t, m, victim.Name)
		mine.Socks = freePort(t)
		setConfigLine(t, mine.ClientConfig, "socks_addr", quote(mine.Socks))

		f := startFlood(t, victim.ORAddr, floodConns)
		startProc(t, "proxy", "--config", mine.ClientConfig)

		// The seed probes every relay each consensus interval (2 s in a
		// testnet), so polling every second over idleWindow sees any
		// consensus that dropped the relay.
		// A fetch that fails (a busy machine) is not the property under
		// test; a consensus without the relay is.
		start := time.Now()
		polls, failed := 0, 0
		for time.Since(start) < idleWindow {
			got, err := dir.relays(t)
			switch {
			case err != nil:
				failed++
				t.Logf("consensus %v into the flood: %v", time.Since(start).Round(time.Millisecond), err)
			case !got[victim.Name]:
				t.Fatalf("%s dropped out of the consensus %v into the flood (%d idle connections held)",
					victim.Name, time.Since(start).Round(time.Millisecond), f.open.Load())
			default:
				polls++
			}
			time.Sleep(time.Second)
		}
		if polls < int(idleWindow/time.Second)/2 {
			t.Fatalf("only %d consensuses fetched over %v of the flood (%d fetches failed)", polls, idleWindow, failed)
		}
		t.Logf("%s listed in all %d consensuses fetched over %v of the flood", victim.Name, polls, idleWindow)

		// The new proxy may still be starting: retry until the hang
		// detector, since the flood never lets up, a fetch that works at
		// all works through the flooded port.
		attempts := 0
		for {
			attempts++
			err := fetch(ctx, mine, web, 1000, "")
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("no page through a client guarded by %s under the flood after %d attempts: %v", victim.Name, attempts, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("page fetched through a new client guarded by %s after %d attempts; it holds %d of the %d idle connections",
			victim.Name, attempts, f.open.Load(), floodConns)
	})
}

// flood keeps idle TCP connections open to one address: each sends
// nothing. One the server holds until a deadline is dialled again, so the
// flood outlasts any handshake deadline.
type flood struct {
	open atomic.Int64 // connections open now
	stop context.CancelFunc
	wg   sync.WaitGroup // one goroutine per connection slot
}

// startFlood dials n connections and returns once each has been dialled
// once; t's cleanup closes them all and waits for every goroutine.
func startFlood(t *testing.T, addr string, n int) *flood {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &flood{stop: cancel}
	t.Cleanup(func() {
		f.stop()
		f.wg.Wait()
	})
	var dialled sync.WaitGroup
	dialled.Add(n)
	var failed atomic.Int64
	for range n {
		f.wg.Go(func() { f.keep(ctx, addr, &dialled, &failed) })
	}
	dialled.Wait()
	if k := failed.Load(); k > 0 {
		t.Fatalf("flood: %d of %d connections to %s failed", k, n, addr)
	}
	return f
}

// keep runs one connection slot until ctx ends, or until the server drops
// its connection at once (refused or evicted).
func (f *flood) keep(ctx context.Context, addr string, dialled *sync.WaitGroup, failed *atomic.Int64) {
	first := true
	for ctx.Err() == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if first {
			first = false
			if err != nil {
				failed.Add(1)
			}
			dialled.Done()
		}
		if err != nil {
			return
		}
		f.open.Add(1)
		unblock := context.AfterFunc(ctx, func() { c.Close() })
		at := time.Now()
		var b [1]byte
		c.Read(b[:]) // returns when the server closes, or at stop
		unblock()
		c.Close()
		f.open.Add(-1)
		if time.Since(at) < floodHeld {
			return
		}
	}
}

// raiseFileLimit makes sure this process may open n files, raising its
// soft limit as far as the hard limit allows.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	lim.Cur = min(n, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < n {
		t.Fatalf("need %d open files, the hard limit is %d (%v): raise ulimit -n", n, lim.Max, err)
	}
}

// setConfigLine replaces the line "key = ..." in a config file.
func setConfigLine(t *testing.T, path, key, value string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + ` = .*$`)
	if !re.Match(raw) {
		t.Fatalf("no %s line in %s", key, path)
	}
	raw = re.ReplaceAll(raw, []byte(key+" = "+value))
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}
