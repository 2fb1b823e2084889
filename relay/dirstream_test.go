package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"veil/conf"
	"veil/directory"
	"veil/directory/dirclient"
	"veil/directory/dirserve"
	"veil/onion"
	"veil/onion/keys"
	"veil/relay/client"
	"veil/relay/path"
)

// countingProxy forwards TCP connections to target and counts them: a
// seed's directory address as a client sees it.
func countingProxy(t *testing.T, target string) (addr string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String(), conns
}

// TestBeginDir: a relay that pins the seed serves its signed consensus on
// a BEGIN_DIR stream of a one-hop circuit; one that pins none ends the
// stream with NOROUTE. A client with a view then fetches the directory
// through its guard's cache, and no connection reaches the seed.
func TestBeginDir(t *testing.T) {
	n := newTestNetwork(t, 1)
	s := n.seeds[0]
	pin := conf.SeedPin{Name: "seed0", DirURL: "http://" + s.DirAddr().String(), Identity: s.ID().String()}
	n.relayEdit = func(cfg *conf.Relay) {
		cfg.DirCacheSeeds = []conf.SeedPin{pin}
		cfg.DirCacheRefresh = conf.Duration(time.Second)
	}
	want := map[keys.NodeID]bool{}
	caches := map[keys.NodeID]bool{}
	for i := range 3 {
		id := n.startRelay(fmt.Sprint("cache", i), i == 1).ID()
		want[id], caches[id] = true, true
	}
	n.relayEdit = nil
	want[n.startRelay("plain", false).ID()] = true
	cl, v := testClient(t, n, want)
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()

	for _, e := range v.Relays {
		c, err := cl.Build(ctx, []directory.Entry{e})
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.DialDir(ctx)
		if !caches[e.Descriptor.NodeID()] {
			var end *client.EndError
			if !errors.As(err, &end) || end.Reason != onion.EndNoRoute {
				t.Fatalf("BEGIN_DIR at a relay with no cache: %v, want END NOROUTE", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("BEGIN_DIR at %s: %v", e.Descriptor.Nickname, err)
		}
		// The cache fetches from the seed in the background: wait for
		// its first document.
		var doc *directory.Consensus
		for doc == nil {
			fmt.Fprintf(st, "GET %s HTTP/1.1\r\nHost: veil\r\n\r\n", dirserve.SeedConsensusPath(s.ID()))
			resp, err := http.ReadResponse(bufio.NewReader(st), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			switch resp.StatusCode {
			case http.StatusOK:
				if doc, err = directory.ParseConsensus(body); err != nil {
					t.Fatal(err)
				}
			case http.StatusNotFound:
				if ctx.Err() != nil {
					t.Fatal("the cache never had the seed's document")
				}
				time.Sleep(50 * time.Millisecond)
			default:
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
		st.Close()
		if doc.SeedID() != s.ID() {
			t.Fatalf("%s served a document of %s", e.Descriptor.Nickname, doc.SeedID())
		}
	}

	// A client whose guard is a cache, and whose seed URL is a counting
	// proxy: with a view, it fetches through the guard, and the seed sees
	// no connection from it.
	var sel *path.Selector
	for range 100 {
		var err error
		if sel, err = path.NewSelector(path.Options{AllowSameSubnet: true}); err != nil {
			t.Fatal(err)
		}
		if g, err := sel.Guard(v); err == nil && caches[g.Descriptor.NodeID()] {
			break
		}
	}
	proxy, conns := countingProxy(t, s.DirAddr().String())
	var dc *dirclient.Client
	gcl := client.New(client.Options{View: func() *directory.View { return dc.View() }, Paths: sel})
	t.Cleanup(gcl.Close)
	dc, err := dirclient.New(dirclient.Options{Seeds: []dirclient.Seed{{Name: "seed0", URL: "http://" + proxy, ID: s.ID()}},
		DirCache: gcl.DirTransport()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dc.Close)
	if _, err := dc.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if conns.Load() == 0 {
		t.Fatal("the first fetch, with no view, did not go to the seed")
	}
	before := conns.Load()
	for range 3 {
		if _, err := dc.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := conns.Load() - before; got != 0 {
		t.Fatalf("%d connections reached the seed while the client had a view and its guard a cache", got)
	}
}
