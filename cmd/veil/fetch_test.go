package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"veil/relay/testnet"
)

// debugClient turns on debug logging in m's client config, where a fetch
// logs what its shard requests did (shard/transfer hedge.go).
func debugClient(t *testing.T, m testnet.Manifest) {
	t.Helper()
	cfg, err := os.ReadFile(m.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^log_level = .*$`)
	if !re.Match(cfg) {
		t.Fatalf("no log_level line in %s", m.ClientConfig)
	}
	cfg = re.ReplaceAll(cfg, []byte(`log_level = "debug"`))
	if err := os.WriteFile(m.ClientConfig, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
}

// startFetch runs `veil fetch` as a process, the link as its argument.
func startFetch(t *testing.T, m testnet.Manifest, link, out string) *proc {
	t.Helper()
	return startProc(t, "fetch", "--config", m.ClientConfig, "-o", out, link)
}

// wait waits for a process to end, failing the test if it hangs, and
// returns its exit status.
func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("%v still running after %v", p.cmd.Args[1:3], within)
		return -1
	}
}

// parts lists the temporary files fetches to out have left beside it.
func parts(t *testing.T, out string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".part-*"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// waitPart waits until the fetch p writing to out has written at least
// size bytes of the file.
func waitPart(t *testing.T, p *proc, out string, size int64) {
	t.Helper()
	deadline := time.Now().Add(hangTimeout)
	for {
		for _, name := range parts(t, out) {
			if st, err := os.Stat(name); err == nil && st.Size() >= size {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("the fetch ended before it wrote %d bytes:\n%s", size, p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fetch wrote fewer than %d bytes in %v", size, hangTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// shardRequests is the line a fetch logs at debug level about its shard
// requests (shard/transfer fetchStats.log).
var shardRequests = regexp.MustCompile(`msg="transfer: shard requests" requests=(\d+) hedged=(\d+) cancelled=(\d+) exhausted=(\d+) .* failures="?\[([^]]*)\]`)

// TestFetchHasNoLongTail: a storage relay is killed while a fetch of a
// 24 MB file runs (paused meanwhile, until the consensus drops the relay).
// The fetch still completes bit-exact; it noticed the relay fail, and no
// segment waited for a request to the dead relay to fail on every relay:
// slow or failed requests were hedged with other shards of the segment
// (issue 12 item 4). Before hedging, each segment from then on waited
// 12 s for the dead relay, and the fetch ran past the hang detector. The
// client's one guard, relay1, stores nothing, so the kill never takes
// the guard.
func TestFetchHasNoLongTail(t *testing.T) {
	_, m := startTestnet(t, 6)
	mine := clientWithGuards(t, m, "relay1")
	debugClient(t, mine)
	dir := t.TempDir()
	data, link := shareRandom(t, mine, dir, 24<<20+11)
	// An undisturbed fetch first, for the figures in the log.
	start := time.Now()
	fetchExact(t, mine, link, filepath.Join(dir, "calm"), data)
	t.Logf("undisturbed fetch of %d bytes: %v", len(data), time.Since(start))

	out := filepath.Join(dir, "out")
	start = time.Now()
	f := startFetch(t, mine, link, out)
	// relay2 .. relay6 store shards (relay/testnet); each holds one shard
	// of every segment. Kill one once the fetch is a few segments in, and
	// hold the fetch until the network has dropped the relay, as a longer
	// fetch would still be running by then: from then on a circuit to the
	// dead relay (still in the fetch's view) is held by its middle for 3 s
	// before it fails, which is what made fetches stall.
	victim := m.Relays[2]
	// Early: a fast fetch has its shards for the next several MB in
	// flight at any moment, so a later kill may find nothing left to ask
	// of the victim.
	waitPart(t, f, out, 1<<20)
	if err := f.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Since(start)
	waitRelayCount(t, m, 5)
	held := time.Since(start) - killedAt
	if err := f.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code := f.wait(t, hangTimeout); code != 0 {
		t.Fatalf("fetch with %s killed at %v exited %d:\n%s", victim.Name, killedAt, code, f.stderr)
	}
	took := time.Since(start)
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetched %d bytes back for %d: %v", len(got), len(data), err)
	}
	g := shardRequests.FindStringSubmatch(f.stderr.String())
	if g == nil {
		t.Fatalf("the fetch did not log its shard requests:\n%s", f.stderr)
	}
	t.Logf("fetch with %s killed at %v, held %v: %v; %s", victim.Name, killedAt, held, took, g[0])
	// The kill must have disturbed the fetch, or the test proved
	// nothing. Which relay the fetch blames depends on where the dead
	// relay sat: as the storage relay of a request it is named itself,
	// as the middle of another request's circuit that request's storage
	// relay is.
	if strings.TrimSpace(g[5]) == "" {
		// The fetch had every shard it wanted from the victim before
		// the kill (requests run ahead of what is written): this run
		// proves nothing about hedging, and says so instead of passing.
		t.Skipf("no request failed: the fetch needed nothing more of %s after the kill, so this run could not test hedging", victim.Name)
	}
	// A request to the dead relay runs through fetchAttempts circuits,
	// each held 3 s by its middle, then asks every other relay: a segment
	// that waits for that to end is the long tail. Hedged, the segment
	// gets k shards from other relays first and cancels the request.
	// Before hedging every segment fetched after the kill waited so
	// (about 20 of 24); hedged, a stray one may still, when the hedges
	// too are slow on a machine running two test suites at once.
	if exhausted, _ := strconv.Atoi(g[4]); exhausted > 2 {
		t.Errorf("%d times a segment waited until a request had tried every relay, instead of hedging", exhausted)
	}
	if hedged, _ := strconv.Atoi(g[2]); hedged == 0 {
		t.Logf("no request was hedged: the margin of one shard absorbed the dead relay")
	}
}

// TestKilledFetchLeavesNoPart: a fetch killed with SIGKILL leaves its
// temporary file; the next fetch to the same output removes it and
// succeeds (issue 12 item 5). A fetch running meanwhile keeps its own:
// another fetch to its output removes only temporary files that no
// running fetch holds.
func TestKilledFetchLeavesNoPart(t *testing.T) {
	_, m := startTestnet(t, 6)
	dir := t.TempDir()
	data, link := shareRandom(t, m, dir, 16<<20+5)
	out := filepath.Join(dir, "out")

	killed := startFetch(t, m, link, out)
	waitPart(t, killed, out, 1<<20)
	killed.signal(t, syscall.SIGKILL)
	if left := parts(t, out); len(left) != 1 {
		t.Fatalf("a killed fetch left %v, want its one temporary file", left)
	}
	fetchExact(t, m, link, out, data)
	if left := parts(t, out); len(left) != 0 {
		t.Fatalf("after the next fetch to %s, %v is left", out, left)
	}

	// A fetch in progress (stopped, so that it is surely still running),
	// and another to the same output run beside it: both succeed, so the
	// second left the first one's file alone. The first finishes last,
	// over the second's file: it may, with --force.
	os.Remove(out)
	running := startProc(t, "fetch", "--config", m.ClientConfig, "--force", "-o", out, link)
	waitPart(t, running, out, 1<<20)
	if err := running.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	fetchExact(t, m, link, out, data)
	if left := parts(t, out); len(left) != 1 {
		t.Fatalf("beside a running fetch, %v is left; want its one temporary file", left)
	}
	if err := running.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code := running.wait(t, hangTimeout); code != 0 {
		t.Fatalf("a fetch exited %d after another to the same output ran beside it:\n%s", code, running.stderr)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("%d bytes in %s, want %d: %v", len(got), out, len(data), err)
	}
	if left := parts(t, out); len(left) != 0 {
		t.Fatalf("after two fetches, %v is left", left)
	}
}
