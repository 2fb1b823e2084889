package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"veil/relay/path"
	"veil/relay/testnet"
	"veil/shard"
)

// startTestnet runs `veil testnet` as a process and returns its manifest.
func startTestnet(t *testing.T, relays int) (*proc, testnet.Manifest) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tn")
	p := startProc(t, "testnet", "--dir", dir, "--relays", fmt.Sprint(relays))
	var m testnet.Manifest
	if err := json.Unmarshal(waitManifest(t, p, dir), &m); err != nil {
		t.Fatal(err)
	}
	return p, m
}

func webAddr(t *testing.T, m testnet.Manifest) netip.AddrPort {
	u, err := url.Parse(m.Web)
	if err != nil {
		t.Fatal(err)
	}
	return netip.MustParseAddrPort(u.Host)
}

// fetch GETs /bytes/n through the proxy and checks every byte against the
// web server's pattern, a 64 KiB block at a time.
func fetch(ctx context.Context, m testnet.Manifest, web netip.AddrPort, n int64, user string) error {
	c, err := testnet.DialSOCKS(ctx, m.Socks, web, user, "x")
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /bytes/%d HTTP/1.0\r\nHost: %s\r\n\r\n", n, web)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return testnet.CheckPattern(resp.Body, n)
}

// guardPID returns the PID of the relay the testnet's client uses as its
// guard: the first node ID in its guard file (relay/path/SPEC.md), found
// among the relays by `veil status --json`.
func guardPID(t *testing.T, m testnet.Manifest) int {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(m.ClientConfig), "client", "guards"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	if len(lines) < 2 || lines[1] == "" {
		t.Fatalf("guard file: %q", raw)
	}
	guardID := strings.Fields(lines[1])[0]
	for _, r := range statusRelays(t, m.ClientConfig) {
		if r.ID != guardID {
			continue
		}
		for _, p := range m.Relays {
			if p.Name == r.Name {
				return p.PID
			}
		}
	}
	t.Fatalf("guard %s is not a testnet relay", guardID)
	return 0
}

// statusRelay is one relay as `veil status --json` lists it.
type statusRelay struct {
	Name   string   `json:"name"`
	ID     string   `json:"id"`
	ORAddr string   `json:"or_addr"`
	Flags  []string `json:"flags"`
}

// statusRelays runs `veil status --json`, as a user would, and returns the
// relays it lists.
func statusRelays(t *testing.T, config string) []statusRelay {
	t.Helper()
	out, err := exec.Command(veilBinary(t), "status", "--config", config, "--json").Output()
	if err != nil {
		t.Fatalf("veil status: %v", err)
	}
	var st struct {
		Relays []statusRelay `json:"relays"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("veil status --json: %v; %s", err, out)
	}
	return st.Relays
}

// socksReply sends a no-auth greeting and one raw request, and returns
// the reply code.
func socksReply(t *testing.T, proxy string, req []byte) byte {
	t.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(hangTimeout))
	c.Write([]byte{5, 1, 0})
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil {
		t.Fatal(err)
	}
	c.Write(req)
	var rep [2]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		t.Fatal(err)
	}
	return rep[1]
}

// TestEndToEnd runs a testnet of real processes and uses it as a SOCKS
// client would: a 100 MB body arrives bit-exact; 32 concurrent streams on
// isolated circuits all complete; the exit refuses what its policy
// forbids; a relay killed mid-stream ends streams through it with an
// error, not a hang, and new streams succeed on other circuits.
func TestEndToEnd(t *testing.T) {
	_, m := startTestnet(t, 6)
	web := webAddr(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	start := time.Now()
	if err := fetch(ctx, m, web, 100<<20, ""); err != nil {
		t.Fatalf("100 MB: %v", err)
	}
	t.Logf("100 MB through three relays in %v", time.Since(start))

	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- fetch(ctx, m, web, 1<<20, fmt.Sprint("user", i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent stream: %v", err)
		}
	}

	// Private destinations are refused: no exit allows them (reply 0x02).
	_, err := testnet.DialSOCKS(ctx, m.Socks, netip.MustParseAddrPort("10.1.2.3:80"), "", "")
	var re *testnet.ReplyError
	if !errors.As(err, &re) || re.Code != 0x02 {
		t.Fatalf("private destination: %v", err)
	}

	// SOCKS edge cases at the real proxy: BIND and UDP ASSOCIATE are not
	// supported (0x07), an unknown address type gets 0x08, and a client
	// that sends garbage is dropped while others are served.
	for _, tc := range []struct {
		req  []byte
		want byte
	}{
		{[]byte{5, 2, 0, 1, 127, 0, 0, 1, 0, 80}, 0x07},
		{[]byte{5, 3, 0, 1, 0, 0, 0, 0, 0, 0}, 0x07},
		{[]byte{5, 1, 0, 9, 1, 2, 3, 4, 0, 80}, 0x08},
	} {
		if got := socksReply(t, m.Socks, tc.req); got != tc.want {
			t.Errorf("request %x: reply %#02x, want %#02x", tc.req, got, tc.want)
		}
	}
	garbage, err := net.Dial("tcp", m.Socks)
	if err != nil {
		t.Fatal(err)
	}
	garbage.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	garbage.SetReadDeadline(time.Now().Add(hangTimeout))
	// Dropped means closed, cleanly or with a reset, not left hanging.
	if _, err := io.ReadAll(garbage); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("a garbage client was not dropped")
	}
	garbage.Close()
	if err := fetch(ctx, m, web, 1<<10, ""); err != nil {
		t.Fatalf("after a garbage client: %v", err)
	}

	// Kill the client's guard, which is on every circuit it builds, under
	// a long download: the stream must end with an error, promptly.
	// The download is under way once its first megabyte has arrived.
	lc, err := testnet.DialSOCKS(ctx, m.Socks, web, "long", "x")
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	fmt.Fprintf(lc, "GET /bytes/%d HTTP/1.0\r\nHost: %s\r\n\r\n", int64(1)<<40, web)
	if _, err := io.CopyN(io.Discard, lc, 1<<20); err != nil {
		t.Fatalf("long download: %v", err)
	}
	long := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, lc)
		if err == nil {
			err = errors.New("the proxy closed the connection before the 1 TB body ended")
		}
		long <- err
	}()
	guard := guardPID(t, m)
	syscall.Kill(guard, syscall.SIGKILL)
	select {
	case err := <-long:
		t.Logf("stream through the killed guard ended: %v", err)
	case <-time.After(hangTimeout):
		t.Fatalf("the stream through a killed guard did not end within %v", hangTimeout)
	}
	// New streams get other circuits, through another guard, once the
	// consensus or the dead link tells the client.
	deadline := time.Now().Add(hangTimeout)
	for {
		err := fetch(ctx, m, web, 1<<20, "after")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new stream after the kill: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// shareRandom writes size random bytes to a file in dir, shares it with
// `veil share` and returns the bytes and the link it printed.
func shareRandom(t *testing.T, m testnet.Manifest, dir string, size int) ([]byte, string) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	in := filepath.Join(dir, fmt.Sprint("in", size))
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	cmd := exec.Command(veilBinary(t), "share", "--config", m.ClientConfig, in)
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("share %d bytes: %v\n%s", size, err, errOut.String())
	}
	link := strings.TrimSpace(string(out))
	if !strings.HasPrefix(link, "veil:") || len(link) >= 200 {
		t.Fatalf("share printed %q", out)
	}
	return data, link
}

// fetchLink runs `veil fetch` with the link on standard input and returns
// what it printed.
func fetchLink(t *testing.T, m testnet.Manifest, link, out string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(veilBinary(t), "fetch", "--config", m.ClientConfig, "-o", out, "-")
	cmd.Stdin = strings.NewReader(link)
	return cmd.CombinedOutput()
}

// fetchExact fetches link to out and fails unless out holds exactly data.
func fetchExact(t *testing.T, m testnet.Manifest, link, out string, data []byte) {
	t.Helper()
	if msg, err := fetchLink(t, m, link, out); err != nil {
		t.Fatalf("fetch %d bytes: %v\n%s", len(data), err, msg)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetched %d bytes back for %d: %v", len(got), len(data), err)
	}
}

// TestShareFetch: files shared with `veil share` on a testnet come back
// bit-exact with `veil fetch`: empty, one byte, an exact multiple of the
// segment size, several segments and 100 MB; a tampered link is refused
// and leaves no output file.
func TestShareFetch(t *testing.T) {
	_, m := startTestnet(t, 6)
	dir := t.TempDir()
	// 100 MB takes over two minutes through race-built processes on two
	// cores, most of make test's budget; 24 MB is still 24 segments and
	// every code path, and make bench moves 100 MB with a plain build.
	large := 100_000_000
	if raceEnabled {
		large = 24_000_000
	}
	for _, size := range []int{0, 1, 2 * shard.DefaultSegmentSize, 3<<20 + 5, large} {
		data, link := shareRandom(t, m, dir, size)
		fetchExact(t, m, link, filepath.Join(dir, fmt.Sprint("out", size)), data)
		if size == 1 {
			bad := []byte(link)
			bad[10] ^= 1
			badOut := filepath.Join(dir, "bad")
			// The link as an argument, before the flags, as DESIGN.md
			// writes the command.
			msg, err := exec.Command(veilBinary(t), "fetch", string(bad), "-o", badOut, "--config", m.ClientConfig).CombinedOutput()
			if err == nil || !strings.Contains(string(msg), "veil: error:") {
				t.Fatalf("a tampered link was accepted: %s", msg)
			}
			if _, err := os.Stat(badOut); err == nil {
				t.Fatal("a failed fetch left an output file")
			}
		}
	}
}

// waitRelayCount polls `veil status --json` until the consensus lists n
// relays.
func waitRelayCount(t *testing.T, m testnet.Manifest, n int) {
	t.Helper()
	deadline := time.Now().Add(hangTimeout)
	for {
		out, err := exec.Command(veilBinary(t), "status", "--config", m.ClientConfig, "--json").Output()
		var st struct {
			Relays []json.RawMessage `json:"relays"`
		}
		if err == nil && json.Unmarshal(out, &st) == nil && len(st.Relays) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consensus never listed %d relays", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFetchSurvivesLosingStorageRelays: a share on the 6-relay testnet
// (5 storage relays, Reed-Solomon 3+2) still comes back bit-exact after
// two storage relays are killed, and after a third a fetch fails with a
// clear error and leaves no output file.
func TestFetchSurvivesLosingStorageRelays(t *testing.T) {
	_, m := startTestnet(t, 6)
	// A client of its own whose one guard, relay1, stores nothing: the
	// relays killed are then never its guards. (A client whose kept
	// guards are down but one, and that one stores a needed shard, cannot
	// reach it: TestFetchNamesAnUnreachableGuard.)
	mine := clientWithGuards(t, m, "relay1")
	dir := t.TempDir()
	data, link := shareRandom(t, mine, dir, 5<<20+77)
	// relay2 .. relay6 store shards (relay/testnet).
	syscall.Kill(m.Relays[1].PID, syscall.SIGKILL)
	syscall.Kill(m.Relays[2].PID, syscall.SIGKILL)
	waitRelayCount(t, m, 4)
	fetchExact(t, mine, link, filepath.Join(dir, "out"), data)
	syscall.Kill(m.Relays[3].PID, syscall.SIGKILL)
	waitRelayCount(t, m, 3)
	lost := filepath.Join(dir, "lost")
	msg, err := fetchLink(t, mine, link, lost)
	if err == nil || !strings.Contains(string(msg), "veil: error: fetch") {
		t.Fatalf("fetch with 3 storage relays gone: %v\n%s", err, msg)
	}
	if _, err := os.Stat(lost); err == nil {
		t.Fatal("a failed fetch left an output file")
	}
}

// TestFetchNamesAnUnreachableGuard: a client whose kept guards are all
// down but one, where that one stores a shard the fetch needs, cannot
// reach that shard without taking a new guard, which the guard rules
// forbid (relay/path SPEC.md §1.1). The fetch fails, leaves no file, and
// says why, instead of calling the file lost.
func TestFetchNamesAnUnreachableGuard(t *testing.T) {
	_, m := startTestnet(t, 6)
	dir := t.TempDir()
	_, link := shareRandom(t, m, dir, 1<<20+5)
	// relay2 .. relay6 store shards; with two of them gone, a (3, 2) code
	// needs a shard from each of the other three, the guard among them. A
	// client of its own, so that the proxy's guard list stays out of it.
	down1, down2, guard := m.Relays[1], m.Relays[2], m.Relays[3]
	mine := clientWithGuards(t, m, down1.Name, down2.Name, guard.Name)
	syscall.Kill(down1.PID, syscall.SIGKILL)
	syscall.Kill(down2.PID, syscall.SIGKILL)
	waitRelayCount(t, m, 4)
	out := filepath.Join(dir, "out")
	msg, err := fetchLink(t, mine, link, out)
	if err == nil {
		t.Fatalf("fetch succeeded through a guard that stores a needed shard:\n%s", msg)
	}
	t.Logf("fetch says:\n%s", msg)
	for _, want := range []string{"veil: error: fetch", "no usable guard", "only kept guard that is up"} {
		if !strings.Contains(string(msg), want) {
			t.Errorf("fetch output lacks %q:\n%s", want, msg)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed fetch left an output file")
	}
}

// shardHolders says which relay holds which shard, from the files on
// their disks (shard/store keeps shard ID hex under shards/).
func shardHolders(m testnet.Manifest) map[[32]byte]string {
	holder := map[[32]byte]string{}
	base := filepath.Dir(m.ClientConfig)
	for _, r := range m.Relays {
		filepath.WalkDir(filepath.Join(base, r.Name, "shards"), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			var id [32]byte
			if b, err := hex.DecodeString(d.Name()); err == nil && len(b) == 32 {
				copy(id[:], b)
				holder[id] = r.Name
			}
			return nil
		})
	}
	return holder
}

// TestRepairRestoresRedundancy: on an 8-relay testnet (7 storage relays),
// two relays holding shards of data segment 0 are killed and `veil
// repair` stores the lost shards again on others; then two more of the
// segment's original holders are killed. Only one original shard of the
// segment is left, so the fetch that still succeeds shows the repaired
// shards are there; a second repair finds nothing missing.
func TestRepairRestoresRedundancy(t *testing.T) {
	_, m := startTestnet(t, 8)
	// A client of its own whose one guard, relay1, stores nothing: killing
	// storage relays then never takes a guard, and a path to any storage
	// relay never needs a second one (relay/path keeps at most three).
	mine := clientWithGuards(t, m, "relay1")
	dir := t.TempDir()
	data, text := shareRandom(t, mine, dir, 3<<20+1)
	link, err := shard.ParseLink(text)
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string]int{}
	for _, r := range m.Relays {
		pids[r.Name] = r.PID
	}
	holder := shardHolders(m)
	var victims []string
	for _, id := range link.ShardIDs(shard.KindData, 0) {
		victims = append(victims, holder[id])
	}
	kill := func(names ...string) {
		for _, name := range names {
			if name == "" || name == "relay1" {
				t.Fatalf("segment 0 is on %v", victims)
			}
			syscall.Kill(pids[name], syscall.SIGKILL)
		}
	}
	kill(victims[:2]...)
	waitRelayCount(t, m, 6)
	out := repair(t, mine, text)
	if strings.Contains(out, " 0 shards missing") {
		t.Fatalf("repair after losing two relays printed %q", out)
	}
	if out := repair(t, mine, text); !strings.Contains(out, " 0 shards missing, 0 stored again") {
		t.Fatalf("a second repair printed %q, want nothing missing", out)
	}
	kill(victims[2:4]...)
	waitRelayCount(t, m, 4)
	fetchExact(t, mine, text, filepath.Join(dir, "out"), data)
}

// clientWithGuards writes a client config like the testnet's but with a
// data directory of its own, whose guard file keeps the relays named, in
// order, and returns m with that config as its client's.
func clientWithGuards(t *testing.T, m testnet.Manifest, names ...string) testnet.Manifest {
	t.Helper()
	ids := map[string]string{}
	for _, r := range statusRelays(t, m.ClientConfig) {
		if slices.Contains(r.Flags, "Guard") {
			ids[r.Name] = r.ID
		}
	}
	base := filepath.Dir(m.ClientConfig)
	// The header line as relay/path writes it.
	theirs, err := os.ReadFile(filepath.Join(base, "client", path.GuardFile))
	if err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(string(theirs), "\n")
	guards := header + "\n"
	for _, name := range names {
		if ids[name] == "" {
			t.Fatalf("%s is not a Guard relay", name)
		}
		guards += fmt.Sprintf("%s %d 0\n", ids[name], time.Now().Unix())
	}
	dataDir := filepath.Join(t.TempDir(), "client")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, path.GuardFile), []byte(guards), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(m.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^data_dir = .*$`)
	if !re.Match(cfg) {
		t.Fatalf("no data_dir line in %s", m.ClientConfig)
	}
	cfg = re.ReplaceAll(cfg, []byte(fmt.Sprintf("data_dir = %q", dataDir)))
	m.ClientConfig = filepath.Join(filepath.Dir(dataDir), "client.toml")
	if err := os.WriteFile(m.ClientConfig, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return m
}

var regexpMissing = regexp.MustCompile(`checked \d+ segments: (\d+) shards missing, (\d+) stored again`)

// repair runs `veil repair` with the link on standard input and returns
// its standard output; both counts it prints must agree.
func repair(t *testing.T, m testnet.Manifest, link string) string {
	t.Helper()
	cmd := exec.Command(veilBinary(t), "repair", "--config", m.ClientConfig)
	cmd.Stdin = strings.NewReader(link)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("repair: %v\n%s%s", err, out, errOut.String())
	}
	if g := regexpMissing.FindStringSubmatch(string(out)); g == nil || g[1] != g[2] {
		t.Fatalf("repair printed %q", out)
	}
	return string(out)
}

// TestShardsSurviveRelayRestart: a storage relay stopped and started again
// still serves the shards it held. Two other storage relays are then
// killed, so the fetch needs every shard the restarted relay holds.
func TestShardsSurviveRelayRestart(t *testing.T) {
	_, m := startTestnet(t, 6)
	mine := clientWithGuards(t, m, "relay1")
	dir := t.TempDir()
	data, text := shareRandom(t, mine, dir, 2<<20+3)
	// relay2 .. relay6 store shards (relay/testnet).
	restarted := m.Relays[1]
	syscall.Kill(restarted.PID, syscall.SIGTERM)
	waitRelayCount(t, m, 5)
	// It leaves the consensus as its drain starts, and holds its data_dir
	// until the drain is over (up to the testnet's shutdown_wait).
	waitExited(t, restarted.PID)
	startProc(t, "relay", "--config", restarted.Config)
	waitRelayCount(t, m, 6)
	syscall.Kill(m.Relays[2].PID, syscall.SIGKILL)
	syscall.Kill(m.Relays[3].PID, syscall.SIGKILL)
	waitRelayCount(t, m, 4)
	fetchExact(t, mine, text, filepath.Join(dir, "out"), data)
}

// waitExited waits until process pid (a testnet's child, which the
// testnet reaps) is gone.
func waitExited(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(hangTimeout)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
