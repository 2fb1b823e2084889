package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"veil/relay/testnet"
)

// seedForwarder is a TCP forwarder on 127.0.0.1 to a seed's directory
// address that counts the connections it accepts: the seed as the client
// under test sees it, so every connection the client makes to the seed is
// counted, and none of the relays' (they keep the seed's real address).
type seedForwarder struct {
	ln    net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup
}

func startSeedForwarder(t *testing.T, seed string) *seedForwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &seedForwarder{ln: ln}
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns.Add(1)
			f.wg.Go(func() {
				defer c.Close()
				up, err := net.Dial("tcp", seed)
				if err != nil {
					return
				}
				defer up.Close()
				go func() {
					io.Copy(up, c)
					up.(*net.TCPConn).CloseWrite()
				}()
				io.Copy(c, up)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		f.wg.Wait()
	})
	return f
}

// clientVia writes a client config like the testnet's, with a data
// directory of its own, debug logging, and every seed's dir_url pointing
// at the forwarder instead (the testnet has one seed).
func clientVia(t *testing.T, m testnet.Manifest, fwd *seedForwarder) testnet.Manifest {
	t.Helper()
	cfg, err := os.ReadFile(m.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, edit := range []struct{ re, to string }{
		{`(?m)^data_dir = .*$`, fmt.Sprintf("data_dir = %q", filepath.Join(dir, "client"))},
		{`(?m)^log_level = .*$`, `log_level = "debug"`},
		// conf.Write indents the keys of a [[seed]] table.
		{`(?m)^[ \t]*dir_url = .*$`, fmt.Sprintf("  dir_url = %q", "http://"+fwd.ln.Addr().String())},
	} {
		re := regexp.MustCompile(edit.re)
		if len(re.FindAll(cfg, -1)) != 1 {
			t.Fatalf("%s: want one line matching %s", m.ClientConfig, edit.re)
		}
		cfg = re.ReplaceAll(cfg, []byte(edit.to))
	}
	m.ClientConfig = filepath.Join(dir, "client.toml")
	if err := os.WriteFile(m.ClientConfig, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return m
}

// throughCache is what dirclient logs, at debug level, when the view came
// through the guard's directory cache.
const throughCache = "consensus fetched through the directory cache"

// TestClientFetchesDirectoryThroughGuard: once a client has a view in its
// disk cache, a `veil share` and a `veil fetch` take the directory from
// their guard (a one-hop circuit, BEGIN_DIR, the relay's mirror of the
// seed's document) and make no connection to the seed, which therefore no
// longer sees the client's address or when it shares (issue 14 item 5).
// The client's seed URL is a counting forwarder; the relays keep the
// seed's own address. Before directory caches, every share and fetch
// fetched from each seed.
func TestClientFetchesDirectoryThroughGuard(t *testing.T) {
	_, m := startTestnet(t, 6)
	fwd := startSeedForwarder(t, m.Seeds[0].DirAddr)
	mine := clientVia(t, m, fwd)
	dir := t.TempDir()

	// Warm the cache: with none, the client bootstraps from the seed.
	data, link := shareRandom(t, mine, dir, 100_003)
	if fwd.conns.Load() == 0 {
		t.Fatal("the first share, with an empty cache, did not reach the seed through the forwarder: the test would prove nothing")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(mine.ClientConfig), "client", "consensus")); err != nil {
		t.Fatalf("no disk cache after the first share: %v", err)
	}

	before := fwd.conns.Load()
	share := exec.Command(veilBinary(t), "share", "--config", mine.ClientConfig, filepath.Join(dir, "in100003"))
	var shareErr bytes.Buffer
	share.Stderr = &shareErr
	out, err := share.Output()
	if err != nil {
		t.Fatalf("share with a warm cache: %v\n%s", err, shareErr.String())
	}
	if !strings.HasPrefix(string(out), "veil:") {
		t.Fatalf("share printed %q", out)
	}
	msg, err := fetchLink(t, mine, link, filepath.Join(dir, "out"))
	if err != nil {
		t.Fatalf("fetch with a warm cache: %v\n%s", err, msg)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "out")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetched %d bytes back for %d: %v", len(got), len(data), err)
	}
	if n := fwd.conns.Load() - before; n != 0 {
		t.Fatalf("%d connections reached the seed from the client during a share and a fetch with a warm cache\nshare:\n%s\nfetch:\n%s",
			n, shareErr.String(), msg)
	}
	for what, log := range map[string]string{"share": shareErr.String(), "fetch": string(msg)} {
		if !strings.Contains(log, throughCache) {
			t.Fatalf("the %s did not log that its directory came through the guard:\n%s", what, log)
		}
	}
	t.Logf("share and fetch with a warm cache: 0 connections to the seed (the bootstrap share made %d)", before)
}
