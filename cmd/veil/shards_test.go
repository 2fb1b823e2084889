package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"veil/directory"
	"veil/onion/keys"
	"veil/relay/testnet"
	"veil/shard"
	"veil/shard/store"
)

// What storage relays hold, read from their disks, and what any client
// can do to them: the audits and attacks of issue 15 items 3 and 4.

// storedShards says which relays hold each shard, from the files in the
// fan-out directories of their stores (shard/store: shards/xx/<64 hex>);
// quarantined files are not held. A shard stored twice lists both
// relays.
func storedShards(m testnet.Manifest) map[[32]byte][]string {
	held := map[[32]byte][]string{}
	base := filepath.Dir(m.ClientConfig)
	for _, r := range m.Relays {
		files, _ := filepath.Glob(filepath.Join(base, r.Name, "shards", "[0-9a-f][0-9a-f]", "*"))
		for _, f := range files {
			var id [32]byte
			if b, err := hex.DecodeString(filepath.Base(f)); err == nil && len(b) == 32 {
				copy(id[:], b)
				held[id] = append(held[id], r.Name)
			}
		}
	}
	return held
}

// shardFile is where relay keeps shard id (shard/store file.go).
func shardFile(m testnet.Manifest, relay string, id [32]byte) string {
	h := hex.EncodeToString(id[:])
	return filepath.Join(filepath.Dir(m.ClientConfig), relay, "shards", h[:2], h)
}

// auditShare checks every shard of every segment of the share of a
// size-byte file — data, manifest and head — against what the relays'
// disks hold: each is stored somewhere, and no relay holds two shards of
// one segment (DESIGN.md G7). It returns how many copies of each shard
// it found.
func auditShare(t *testing.T, m testnet.Manifest, link *shard.Link, size int64) map[[32]byte]int {
	t.Helper()
	held := storedShards(m)
	copies := map[[32]byte]int{}
	for _, seg := range link.AllShardIDs(size) {
		per := map[string]int{}
		for j, id := range seg.IDs {
			if len(held[id]) == 0 {
				t.Fatalf("%v segment %d: shard %d is on no relay", seg.Kind, seg.Index, j)
			}
			copies[id] = len(held[id])
			for _, r := range held[id] {
				if per[r]++; per[r] > 1 {
					t.Fatalf("%v segment %d: %s holds %d of its shards", seg.Kind, seg.Index, r, per[r])
				}
			}
		}
	}
	return copies
}

// TestShardAudit reads every relay's store after a share: every shard of
// every kind (data, manifest, head) is stored exactly once, no relay
// holds two shards of any segment (so never k), and the shard IDs of the
// file share no common prefix. (Before, only data segments were checked,
// and one holder was kept per ID, so the head's or the manifest's shards
// two to a relay, or a shard stored twice, went unseen.)
func TestShardAudit(t *testing.T) {
	_, m := startTestnet(t, 6)
	dir := t.TempDir()
	data, text := shareRandom(t, m, dir, 4<<20)
	link, err := shard.ParseLink(text)
	if err != nil {
		t.Fatal(err)
	}
	copies := auditShare(t, m, link, int64(len(data)))
	kinds := map[shard.Kind]int{}
	for _, seg := range link.AllShardIDs(int64(len(data))) {
		kinds[seg.Kind]++
		for _, id := range seg.IDs {
			if copies[id] != 1 {
				t.Fatalf("%v segment %d: a shard is stored %d times", seg.Kind, seg.Index, copies[id])
			}
		}
	}
	t.Logf("%d shards audited: %d data segments, %d manifest, the head", len(copies), kinds[shard.KindData], kinds[shard.KindManifest])
	// IDs are keyed hashes with no structure: no two of this file share
	// their first four bytes (for random IDs, a chance of about 1 in 10^7
	// here), and none is the ID of another segment's shard.
	seen := map[[4]byte]bool{}
	for id := range copies {
		p := [4]byte(id[:4])
		if seen[p] {
			t.Fatalf("two shard IDs of one file share the prefix %x", p)
		}
		seen[p] = true
	}
}

// anyClient is a client in this process, with a data directory of its
// own: what any stranger runs to talk to storage relays directly.
type anyClient struct {
	n *network
}

func newAnyClient(t *testing.T, m testnet.Manifest) *anyClient {
	t.Helper()
	mine := clientWithGuards(t, m, "relay1")
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	n, err := openNetwork(ctx, mine.ClientConfig, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.close)
	return &anyClient{n: n}
}

// entry finds the relay named in the client's consensus, waiting for it.
func (a *anyClient) entry(t *testing.T, name string) (*directory.View, directory.Entry) {
	t.Helper()
	deadline := time.Now().Add(hangTimeout)
	for {
		if v := a.n.dc.View(); v != nil {
			for _, e := range v.Usable(time.Now()) {
				if e.Descriptor.Nickname == name && e.Flags&directory.FlagStorage != 0 {
					return v, e
				}
			}
		}
		a.n.dc.Fetch(context.Background())
		if time.Now().After(deadline) {
			t.Fatalf("%s is not a storage relay in the consensus", name)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// call runs f on a storage client to the relay named, over a circuit of
// its own.
func (a *anyClient) call(t *testing.T, name string, f func(*store.Client) error) error {
	t.Helper()
	v, e := a.entry(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	hops, err := a.n.net.Paths.PathTo(v, e)
	if err != nil {
		return err
	}
	c, err := a.n.cl.Build(ctx, hops)
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.DialStore(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	return f(store.NewClient(s))
}

// fillWithJunk PUTs random shard-sized junk under random IDs on the relay
// named until it refuses with QUOTA, as any client may, and returns how
// many it took. A circuit that fails is tried again.
func (a *anyClient) fillWithJunk(t *testing.T, name string, maxPuts int) int {
	t.Helper()
	junk := make([]byte, shard.TestnetParams.ShardSize())
	for put, failures := 0, 0; put < maxPuts; {
		var id [32]byte
		rand.Read(id[:])
		rand.Read(junk)
		err := a.call(t, name, func(sc *store.Client) error { return sc.Put(id, junk, 24*time.Hour) })
		switch {
		case err == nil:
			put++
		case errors.Is(err, store.ErrQuota):
			return put
		case failures < 5:
			failures++
		default:
			t.Fatalf("junk PUT %d to %s: %v", put, name, err)
		}
	}
	t.Fatalf("%s took %d junk shards and still has room", name, maxPuts)
	return 0
}

// restartWithQuota stops a testnet relay, gives it a quota of quota bytes
// and starts it again: an operator's small disk, which junk fills in a
// few PUTs where the testnet's 1 GiB would take thousands.
func restartWithQuota(t *testing.T, m testnet.Manifest, r testnet.Proc, quota string) {
	t.Helper()
	syscall.Kill(r.PID, syscall.SIGTERM)
	cfg, err := os.ReadFile(r.Config)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^storage_quota = .*$`)
	if !re.Match(cfg) {
		t.Fatalf("no storage_quota line in %s", r.Config)
	}
	cfg = re.ReplaceAll(cfg, []byte(fmt.Sprintf("storage_quota = %q", quota)))
	if err := os.WriteFile(r.Config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	waitRelayCount(t, m, len(m.Relays)-1)
	waitExited(t, r.PID) // its drain over, its data_dir free
	startProc(t, "relay", "--config", r.Config)
	waitRelayCount(t, m, len(m.Relays))
}

// TestAttackQuotaFillingCannotConcentrateShards: an attacker, as any
// client, fills two storage relays' quotas with junk, then an honest
// client shares a file. Every shard whose primary is full moves to an
// alternate, and a segment's alternates are shared by all its shards: the
// share must still leave no relay holding two shards of any segment
// (data, manifest and head alike), and the file must come back. Before
// the fix, both shards a segment lost to the full relays often went to
// one alternate (issue 15: 7 of 58 segments).
func TestAttackQuotaFillingCannotConcentrateShards(t *testing.T) {
	_, m := startTestnet(t, 8)
	// relay2 .. relay8 store shards (relay/testnet): seven, for five
	// shards a segment at (3, 2). Two of them are the attacker's targets.
	targets := []testnet.Proc{m.Relays[2], m.Relays[5]}
	for _, r := range targets {
		restartWithQuota(t, m, r, "4MiB")
	}
	attacker := newAnyClient(t, m)
	for _, r := range targets {
		n := attacker.fillWithJunk(t, r.Name, 64)
		t.Logf("%s full after %d junk PUTs", r.Name, n)
	}

	sharer := clientWithGuards(t, m, "relay1")
	dir := t.TempDir()
	size := 16<<20 + 77
	data, text := shareRandom(t, sharer, dir, size)
	link, err := shard.ParseLink(text)
	if err != nil {
		t.Fatal(err)
	}
	auditShare(t, m, link, int64(size))

	// The attack bit: count the segments that lost a primary to a full
	// relay, and check that none of the share is on the full relays.
	full := map[keys.NodeID]bool{}
	var storage []keys.NodeID
	for _, r := range statusRelays(t, m.ClientConfig) {
		if r.Name == "relay1" {
			continue // stores nothing
		}
		id, err := keys.ParseNodeID(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		storage = append(storage, id)
		for _, tr := range targets {
			if r.Name == tr.Name {
				full[id] = true
			}
		}
	}
	held := storedShards(m)
	displaced, two := 0, 0
	for _, seg := range link.AllShardIDs(int64(size)) {
		cands, err := shard.Place(link.PlacementKey(), seg.IDs, storage)
		if err != nil {
			t.Fatal(err)
		}
		lost := 0
		for j, c := range cands {
			if full[c[0]] {
				lost++
			}
			for _, r := range held[seg.IDs[j]] {
				for _, tr := range targets {
					if r == tr.Name {
						t.Fatalf("%v segment %d: shard %d is on the full relay %s", seg.Kind, seg.Index, j, r)
					}
				}
			}
		}
		if lost > 0 {
			displaced++
		}
		if lost == 2 {
			two++
		}
	}
	t.Logf("%d of %d segments had a primary on a full relay, %d both", displaced, len(link.AllShardIDs(int64(size))), two)
	if two == 0 {
		t.Fatal("no segment lost two primaries: the attack was not exercised")
	}
	fetchExact(t, sharer, text, filepath.Join(dir, "out"), data)
}

// Shard file header offsets (shard/store file.go): the expiry and the
// content's hash.
const (
	fileOffExpiry = 44
	fileOffSum    = 56
	fileHeaderLen = 88
)

// refusedShards is the count a fetch logs at debug level of shards that
// failed their hash (shard/transfer fetchStats.log).
var refusedShards = regexp.MustCompile(`msg="transfer: shard requests" .*refused=(\d+)`)

// TestCorruptShardOnDisk: a shard damaged on a relay's disk is caught by
// two checks, each on its own. The relay checks the hash in the file's
// header on every read: asked for a damaged shard, it answers CORRUPT,
// quarantines the file and has it no more. The fetcher checks every shard
// against the manifest: shards damaged with a matching header, which the
// relay serves, are refused and others used, and the file comes back
// bit-exact. (Before, one test covered both, and passed with either check
// removed.)
func TestCorruptShardOnDisk(t *testing.T) {
	_, m := startTestnet(t, 6)
	dir := t.TempDir()
	size := 8<<20 + 9
	data, text := shareRandom(t, m, dir, size)
	link, err := shard.ParseLink(text)
	if err != nil {
		t.Fatal(err)
	}
	held := storedShards(m)
	holder := func(id [32]byte) string {
		if len(held[id]) != 1 {
			t.Fatalf("shard %x is on %v", id[:4], held[id])
		}
		return held[id][0]
	}
	damage := func(relay string, id [32]byte, fixHeader bool) {
		p := shardFile(m, relay, id)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-1] ^= 0xff
		if fixHeader {
			sum := sha256.Sum256(b[fileHeaderLen:])
			copy(b[fileOffSum:], sum[:])
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("relay quarantines", func(t *testing.T) {
		id := link.ShardIDs(shard.KindData, 0)[0]
		relay := holder(id)
		damage(relay, id, false)
		c := newAnyClient(t, m)
		var got []byte
		err := c.call(t, relay, func(sc *store.Client) error {
			var err error
			got, err = sc.Get(id)
			return err
		})
		if !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("GET of a damaged shard from %s: %d bytes, %v; want CORRUPT", relay, len(got), err)
		}
		if _, err := os.Stat(shardFile(m, relay, id)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the damaged file is still in place: %v", err)
		}
		q, _ := filepath.Glob(filepath.Join(filepath.Dir(m.ClientConfig), relay, "shards", "quarantine", hex.EncodeToString(id[:])+".*"))
		if len(q) != 1 {
			t.Fatalf("quarantine holds %v", q)
		}
		err = c.call(t, relay, func(sc *store.Client) error { _, err := sc.Get(id); return err })
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GET again: %v, want NOT_FOUND", err)
		}
	})

	t.Run("fetcher refuses", func(t *testing.T) {
		// Shard 0 of every other data segment, damaged with a header
		// that matches: the relay's check passes and it serves them.
		segs := link.Params.Segments(int64(size))
		var damaged [][32]byte
		for s := uint64(1); s < uint64(segs); s++ {
			id := link.ShardIDs(shard.KindData, s)[0]
			damage(holder(id), id, true)
			damaged = append(damaged, id)
		}
		debugClient(t, m)
		out := filepath.Join(dir, "out")
		msg, err := fetchLink(t, m, text, out)
		if err != nil {
			t.Fatalf("fetch: %v\n%s", err, msg)
		}
		if got, err := os.ReadFile(out); err != nil || string(got) != string(data) {
			t.Fatalf("fetched %d bytes back for %d: %v", len(got), len(data), err)
		}
		g := refusedShards.FindSubmatch(msg)
		if g == nil {
			t.Fatalf("no shard request summary in the fetch's log:\n%s", msg)
		}
		refused, _ := strconv.Atoi(string(g[1]))
		if refused == 0 {
			t.Fatalf("the fetch refused no shard: it never used the %d damaged ones", len(damaged))
		}
		// The relays served them: none was quarantined.
		for _, id := range damaged {
			if _, err := os.Stat(shardFile(m, holder(id), id)); err != nil {
				t.Fatalf("a damaged shard with a matching header is gone from its relay: %v", err)
			}
		}
		t.Logf("the fetch refused %d of the %d damaged shards the relays served", refused, len(damaged))
	})
}

// TestShareTTLIsAPublicBucket: a share asked to live 50 hours stores
// every shard — data, manifest and head — for the public 72-hour bucket,
// with an expiry on a whole hour: what a relay's disk shows (expiry −
// mtime) is 72 to 73 hours on every shard, as for anyone's 72-hour share
// stored that hour. Before, it was 50.0000 hours on all of them, a tag
// that picked the share out on every relay.
func TestShareTTLIsAPublicBucket(t *testing.T) {
	_, m := startTestnet(t, 6)
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	size := 3<<20 + 1
	b := make([]byte, size)
	rand.Read(b)
	if err := os.WriteFile(in, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(veilBinary(t), "share", "--config", m.ClientConfig, "--ttl", "50h", in)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("share: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "veil: note: --ttl 50h is kept as 72h") {
		t.Errorf("share did not say that 50h is kept as 72h:\n%s", errOut.String())
	}
	link, err := shard.ParseLink(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	held := storedShards(m)
	lo, hi := time.Duration(1<<62), time.Duration(0)
	n := 0
	for _, seg := range link.AllShardIDs(int64(size)) {
		for _, id := range seg.IDs {
			for _, r := range held[id] {
				p := shardFile(m, r, id)
				h := make([]byte, fileHeaderLen)
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				_, err = io.ReadFull(f, h)
				st, _ := f.Stat()
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				expiry := int64(binary.BigEndian.Uint64(h[fileOffExpiry:]))
				if expiry%int64(time.Hour) != 0 {
					t.Fatalf("%v segment %d on %s: expiry %v is not on a whole hour", seg.Kind, seg.Index, r, time.Unix(0, expiry).UTC())
				}
				d := time.Duration(expiry - st.ModTime().UnixNano())
				lo, hi = min(lo, d), max(hi, d)
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no shard of the share found")
	}
	t.Logf("%d shards: expiry − mtime from %.4f h to %.4f h", n, lo.Hours(), hi.Hours())
	if lo < 72*time.Hour || hi > 73*time.Hour {
		t.Fatalf("expiry − mtime from %v to %v, want within [72h, 73h]: the 72-hour bucket on a whole hour", lo, hi)
	}
}
