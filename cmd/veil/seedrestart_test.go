package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"veil/directory"
	"veil/onion/keys"
	"veil/relay/testnet"
)

// restartGuardAfter is the seed's guard_min_uptime in
// TestSeedRestartKeepsFlags: long enough that a seed which forgot its
// relays on restart could not give Guard back by its first consensus
// (signed one interval, a second, after it starts), short enough for a
// test.
const restartGuardAfter = 4 * time.Second

// TestSeedRestartKeepsFlags (issue 14, item 3): a seed remembers its
// relays' history on disk, so a restart changes no flags. Relays earn
// Guard under a seed whose Guard rule asks for a few seconds of history;
// the seed is stopped with SIGTERM and started again on the same data
// directory; the first consensus it signs after the restart lists every
// relay with Guard still set. Before, Guard rested on the current gossip
// membership, which a restart begins anew: the first consensus after it
// had no Guard at all. A proxy carries a fetch before the stop, while the
// seed is down and after the restart: clients ride out a seed's restart
// on the documents they hold.
func TestSeedRestartKeepsFlags(t *testing.T) {
	n := newLocalNet(t)
	setConfigLine(t, n.seedCfg, "guard_min_uptime", fmt.Sprintf("%q", restartGuardAfter.String()))
	// One false death under a loaded machine's gossip could cost a relay
	// a few percent of its weighted uptime over seconds of history; the
	// rule under test is memory, not the fraction.
	setConfigLine(t, n.seedCfg, "guard_min_uptime_percent", "50")
	seed := startProc(t, "seed", "--config", n.seedCfg)
	names := []string{"alpha", "bravo", "charlie"}
	for i, name := range names {
		startProc(t, "relay", "--config", n.relayConfig(name, i == 0))
	}

	// Every relay earns Guard.
	var before *directory.Consensus
	deadline := time.Now().Add(hangTimeout)
	for {
		if _, c, err := n.consensus(); err == nil && len(c.Relays) == len(names) && guards(c) == len(names) {
			before = c
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relays never all got Guard")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d relays with Guard", guards(before))

	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "carried") }))
	defer web.Close()
	socks := freePort(t)
	setConfigLine(t, n.client, "socks_addr", quote(socks))
	setConfigLine(t, n.client, "local_testnet", "true")
	startProc(t, "proxy", "--config", n.client)
	carries := func(when string) {
		t.Helper()
		if err := fetchThrough(socks, netip.MustParseAddrPort(strings.TrimPrefix(web.URL, "http://"))); err != nil {
			t.Fatalf("a fetch through the proxy %s: %v", when, err)
		}
	}
	carries("before the seed stops")

	seed.signal(t, syscall.SIGTERM)
	carries("while the seed is down")
	// What the restarted seed serves until it signs anew: its own last
	// document, read back from disk.
	saved, err := os.ReadFile(filepath.Join(n.dir, "seed", "consensus.bin"))
	if err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	startProc(t, "seed", "--config", n.seedCfg)

	// Poll faster than the seed signs (1 s), so the first new document is
	// the one seen: any document but the saved one was signed after the
	// restart.
	deadline = time.Now().Add(hangTimeout)
	for {
		raw, c, err := n.consensus()
		if err == nil && !bytes.Equal(raw, saved) {
			t.Logf("first consensus after the restart: signed %v after it, %d relays, %d with Guard",
				time.Since(restarted).Round(time.Millisecond), len(c.Relays), guards(c))
			carries("after the restart")
			for _, want := range before.Relays {
				id := want.Descriptor.NodeID()
				got, ok := entryOf(c, id)
				switch {
				case !ok:
					t.Errorf("%s (%s) is not listed after the restart", want.Descriptor.Nickname, id.Short())
				case got.Flags != want.Flags:
					t.Errorf("%s: flags %v after the restart, %v before", want.Descriptor.Nickname, got.Flags, want.Flags)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted seed signed nothing new (last error: %v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// consensus fetches the seed's current document, byte for byte, and
// parses it; it must be the seed's own.
func (n *localNet) consensus() ([]byte, *directory.Consensus, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + n.dirAddr + "/veil/v1/consensus")
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, directory.MaxConsensusLen))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("consensus: %s", resp.Status)
	}
	c, err := directory.ParseConsensus(raw)
	if err != nil {
		return nil, nil, err
	}
	if c.SeedID() != n.seedID {
		return nil, nil, fmt.Errorf("consensus signed by %s, not the seed", c.SeedID().Short())
	}
	return raw, c, nil
}

func guards(c *directory.Consensus) int {
	g := 0
	for _, e := range c.Relays {
		if e.Flags&directory.FlagGuard != 0 {
			g++
		}
	}
	return g
}

func entryOf(c *directory.Consensus, id keys.NodeID) (directory.Entry, bool) {
	for _, e := range c.Relays {
		if e.Descriptor.NodeID() == id {
			return e, true
		}
	}
	return directory.Entry{}, false
}

// fetchThrough GETs / from web through the SOCKS proxy, retrying while the
// proxy starts, within hangTimeout; the body must be what the server sent.
func fetchThrough(socks string, web netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		if err = fetchOnce(ctx, socks, web); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

func fetchOnce(ctx context.Context, socks string, web netip.AddrPort) error {
	c, err := testnet.DialSOCKS(ctx, socks, web, "", "")
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", web)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if string(body) != "carried" {
		return fmt.Errorf("body %q", body)
	}
	return nil
}
