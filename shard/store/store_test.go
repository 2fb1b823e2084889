package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is an injected, settable time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

// newClock starts on a whole hour, so a whole-hour TTL expires exactly
// then (Put rounds expiries up to ExpiryGranularity).
func newClock() *clock { return &clock{now: time.Unix(472_222*3600, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func testID(n int) [IDLen]byte {
	var id [IDLen]byte
	copy(id[:], fmt.Sprintf("shard-%08d", n))
	id[0] = byte(n) // spread over fan-out directories
	return id
}

func openTest(t testing.TB, dir string, c *clock, quota int64) *Store {
	t.Helper()
	s, err := Open(dir, Options{Quota: quota, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPutGetHas(t *testing.T) {
	c := newClock()
	s := openTest(t, t.TempDir(), c, 1<<20)
	id := testID(1)
	if s.Has(id) {
		t.Fatal("Has before Put")
	}
	if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Put: %v, want ErrNotFound", err)
	}
	data := []byte("some sealed, coded bytes")
	if err := s.Put(id, data, 0); err != nil {
		t.Fatal(err)
	}
	if !s.Has(id) {
		t.Fatal("Has after Put = false")
	}
	got, err := s.Get(id)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get = %q, %v", got, err)
	}
	// An empty shard is legal.
	if err := s.Put(testID(2), nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(testID(2)); err != nil || len(got) != 0 {
		t.Fatalf("Get empty = %q, %v", got, err)
	}
	if used, n := s.Usage(); used != 2*HeaderLen+int64(len(data)) || n != 2 {
		t.Fatalf("Usage = %d, %d", used, n)
	}
}

func TestPutSameID(t *testing.T) {
	c := newClock()
	s := openTest(t, t.TempDir(), c, 1<<20)
	id := testID(1)
	if err := s.Put(id, []byte("alpha"), time.Hour); err != nil {
		t.Fatal(err)
	}
	// Identical content: accepted, costs nothing more, extends the expiry.
	if err := s.Put(id, []byte("alpha"), 3*time.Hour); err != nil {
		t.Fatalf("identical re-Put: %v", err)
	}
	// A shorter TTL never shortens the life.
	if err := s.Put(id, []byte("alpha"), time.Minute); err != nil {
		t.Fatalf("identical re-Put, shorter TTL: %v", err)
	}
	if used, n := s.Usage(); used != HeaderLen+5 || n != 1 {
		t.Fatalf("Usage = %d, %d after identical re-Puts", used, n)
	}
	for _, other := range [][]byte{[]byte("alphb"), []byte("alph"), nil} {
		if err := s.Put(id, other, time.Hour); !errors.Is(err, ErrConflict) {
			t.Fatalf("Put %q over alpha: %v, want ErrConflict", other, err)
		}
	}
	c.Advance(2 * time.Hour)
	if !s.Has(id) {
		t.Fatal("expiry not extended by the identical re-Put")
	}
	c.Advance(time.Hour)
	if s.Has(id) {
		t.Fatal("still there after the extended expiry")
	}
	// Once expired, the ID is free for other content.
	if err := s.Put(id, []byte("beta"), time.Hour); err != nil {
		t.Fatalf("Put over expired: %v", err)
	}
	if got, err := s.Get(id); err != nil || string(got) != "beta" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if used, n := s.Usage(); used != HeaderLen+4 || n != 1 {
		t.Fatalf("Usage = %d, %d", used, n)
	}
}

func TestQuota(t *testing.T) {
	c := newClock()
	const size = 1000
	quota := int64(3 * (HeaderLen + size))
	s := openTest(t, t.TempDir(), c, quota)
	data := make([]byte, size)
	for i := range 3 {
		if err := s.Put(testID(i), data, time.Duration(i+1)*time.Hour); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	if used, _ := s.Usage(); used != quota {
		t.Fatalf("usage %d, want exactly the quota %d", used, quota)
	}
	if err := s.Put(testID(3), []byte{1}, time.Hour); !errors.Is(err, ErrQuota) {
		t.Fatalf("Put over quota: %v, want ErrQuota", err)
	}
	if s.Has(testID(3)) {
		t.Fatal("refused shard is present")
	}
	// A re-Put of a stored shard needs no space.
	if err := s.Put(testID(0), data, 2*time.Hour); err != nil {
		t.Fatalf("identical re-Put at full quota: %v", err)
	}
	// Expiry frees space: Put sweeps on its own when something expired.
	c.Advance(2*time.Hour + time.Second) // shards 0 and 1 expire
	if err := s.Put(testID(3), data, time.Hour); err != nil {
		t.Fatalf("Put after expiry: %v", err)
	}
	if used, n := s.Usage(); used != 2*(HeaderLen+size) || n != 2 {
		t.Fatalf("Usage = %d, %d after the implicit sweep", used, n)
	}
	c.Advance(2 * time.Hour)
	if n := s.Sweep(); n != 2 {
		t.Fatalf("Sweep removed %d, want 2", n)
	}
	if used, n := s.Usage(); used != 0 || n != 0 {
		t.Fatalf("Usage = %d, %d after Sweep", used, n)
	}
	ents, _ := filepath.Glob(filepath.Join(s.dir, "??", "*"))
	if len(ents) != 0 {
		t.Fatalf("files left after sweep: %v", ents)
	}
}

func TestMaxShards(t *testing.T) {
	s, err := Open(t.TempDir(), Options{Quota: 1 << 20, MaxShards: 2, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Put(testID(i), []byte{1}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(testID(2), []byte{1}, 0); !errors.Is(err, ErrQuota) {
		t.Fatalf("third shard: %v, want ErrQuota", err)
	}
}

func TestTTL(t *testing.T) {
	c := newClock()
	s := openTest(t, t.TempDir(), c, 1<<20)
	if err := s.Put(testID(1), []byte("x"), DefaultMaxTTL+time.Second); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ttl over max: %v, want ErrInvalid", err)
	}
	if err := s.Put(testID(1), []byte("x"), -time.Second); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative ttl: %v, want ErrInvalid", err)
	}
	if err := s.Put(testID(1), []byte("x"), DefaultMaxTTL); err != nil {
		t.Fatalf("ttl = max: %v", err)
	}
	if err := s.Put(testID(2), []byte("y"), 0); err != nil { // default TTL
		t.Fatal(err)
	}
	c.Advance(DefaultTTL - time.Nanosecond)
	if !s.Has(testID(2)) {
		t.Fatal("gone before the default TTL")
	}
	c.Advance(time.Nanosecond)
	if s.Has(testID(2)) {
		t.Fatal("present at the default TTL")
	}
	if _, err := s.Get(testID(2)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get expired: %v, want ErrNotFound", err)
	}
	if !s.Has(testID(1)) {
		t.Fatal("long-lived shard gone")
	}
}

// TestExpiryIsCoarse: a shard's expiry, in the index and in its file's
// header, is now + TTL rounded up to a whole hour, whatever the second
// and nanosecond of its arrival (shard/SPEC.md §8.2): shards put a few
// milliseconds or 59 minutes apart in one hour with one TTL carry the
// same expiry. Before, the header held arrival + TTL to the nanosecond.
func TestExpiryIsCoarse(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	s := openTest(t, dir, c, 1<<20)
	hour := c.Now()
	c.Advance(17*time.Minute + 123456789)
	if err := s.Put(testID(1), []byte("a"), 72*time.Hour); err != nil {
		t.Fatal(err)
	}
	c.Advance(42*time.Minute + 987654321)
	if err := s.Put(testID(2), []byte("b"), 72*time.Hour); err != nil {
		t.Fatal(err)
	}
	want := hour.Add(73 * time.Hour).UnixNano()
	for _, i := range []int{1, 2} {
		id := testID(i)
		h, _, err := readHeader(shardPath(dir, &id))
		if err != nil {
			t.Fatal(err)
		}
		if h.expiry != want || h.expiry%int64(ExpiryGranularity) != 0 {
			t.Fatalf("shard %d: expiry %v in its header, want %v", i, time.Unix(0, h.expiry).UTC(), time.Unix(0, want).UTC())
		}
	}
	// Kept at least the TTL, at most an hour more.
	c.Advance(time.Unix(0, want).Sub(c.Now()) - time.Nanosecond)
	if !s.Has(testID(1)) || !s.Has(testID(2)) {
		t.Fatal("gone before their coarse expiry")
	}
	c.Advance(time.Nanosecond)
	if s.Has(testID(1)) || s.Has(testID(2)) {
		t.Fatal("kept past their coarse expiry")
	}
}

func TestTooLarge(t *testing.T) {
	s := openTest(t, t.TempDir(), newClock(), 64<<20)
	if err := s.Put(testID(1), make([]byte, MaxShardSize+1), 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize: %v, want ErrTooLarge", err)
	}
	if err := s.Put(testID(1), make([]byte, MaxShardSize), 0); err != nil {
		t.Fatalf("exactly MaxShardSize: %v", err)
	}
	small, err := Open(t.TempDir(), Options{Quota: 1 << 20, MaxShardSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := small.Put(testID(1), make([]byte, 11), 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over Options.MaxShardSize: %v, want ErrTooLarge", err)
	}
}

func TestRestart(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	s := openTest(t, dir, c, 1<<20)
	want := map[[IDLen]byte][]byte{}
	for i := range 20 {
		data := bytes.Repeat([]byte{byte(i)}, 100+i)
		want[testID(i)] = data
		if err := s.Put(testID(i), data, time.Duration(i+1)*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	used, n := s.Usage()

	s2 := openTest(t, dir, c, 1<<20)
	if u2, n2 := s2.Usage(); u2 != used || n2 != n {
		t.Fatalf("after restart Usage = %d, %d; want %d, %d", u2, n2, used, n)
	}
	for id, data := range want {
		if got, err := s2.Get(id); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("after restart Get %x = %v", id[:4], err)
		}
	}
	// Expiry times survive too: shard i lives i+1 hours.
	c.Advance(10*time.Hour + time.Minute)
	s3 := openTest(t, dir, c, 1<<20)
	for i := range 20 {
		if got := s3.Has(testID(i)); got != (i >= 10) {
			t.Fatalf("after 10h and restart Has(%d) = %v", i, got)
		}
	}
	if _, n3 := s3.Usage(); n3 != 10 {
		t.Fatalf("Open kept %d shards, want the 10 unexpired", n3)
	}
}

func TestCorruptShard(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	s := openTest(t, dir, c, 1<<20)
	id := testID(7)
	data := bytes.Repeat([]byte("payload "), 100)
	if err := s.Put(id, data, 0); err != nil {
		t.Fatal(err)
	}
	path := shardPath(dir, &id)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[HeaderLen+123] ^= 0x01
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(id)
	if !errors.Is(err, ErrCorrupt) || got != nil {
		t.Fatalf("Get of a flipped byte = %d bytes, %v; want ErrCorrupt and nothing", len(got), err)
	}
	if StatusOf(err) != StatusCorrupt {
		t.Fatalf("StatusOf = %v", StatusOf(err))
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("corrupt file still in place: %v", err)
	}
	q, _ := os.ReadDir(filepath.Join(dir, quarantineDir))
	if len(q) != 1 || !strings.HasPrefix(q[0].Name(), filepath.Base(path)) {
		t.Fatalf("quarantine holds %v", q)
	}
	if s.Has(id) {
		t.Fatal("Has after corruption")
	}
	if used, n := s.Usage(); used != 0 || n != 0 {
		t.Fatalf("Usage = %d, %d", used, n)
	}
	// The ID can be stored again (repair).
	if err := s.Put(id, data, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(id); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get after re-Put: %v", err)
	}
}

func TestCorruptHeaderOnGet(t *testing.T) {
	// A file whose header names another shard (copied under the wrong name)
	// is caught too.
	c := newClock()
	dir := t.TempDir()
	s := openTest(t, dir, c, 1<<20)
	a, b := testID(1), testID(2)
	b[0] = a[0] // same fan-out directory
	for _, id := range [][IDLen]byte{a, b} {
		if err := s.Put(id, []byte("same"), 0); err != nil {
			t.Fatal(err)
		}
	}
	content, _ := os.ReadFile(shardPath(dir, &a))
	os.WriteFile(shardPath(dir, &b), content, 0o600)
	if _, err := s.Get(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of a misnamed file: %v, want ErrCorrupt", err)
	}
	if _, err := s.Get(a); err != nil {
		t.Fatal(err)
	}
}

func TestOpenDamage(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	s := openTest(t, dir, c, 1<<20)
	for i := range 4 {
		if err := s.Put(testID(i), bytes.Repeat([]byte{byte(i)}, 500), 0); err != nil {
			t.Fatal(err)
		}
	}
	// Shard 0 truncated mid-content, shard 1 truncated mid-header, shard 2
	// with a bad magic; a temp file left by a crash beside shard 3; and a
	// file that is not a shard's.
	id0, id1, id2, id3 := testID(0), testID(1), testID(2), testID(3)
	os.Truncate(shardPath(dir, &id0), HeaderLen+100)
	os.Truncate(shardPath(dir, &id1), 10)
	b, _ := os.ReadFile(shardPath(dir, &id2))
	b[0] = 'X'
	os.WriteFile(shardPath(dir, &id2), b, 0o600)
	sub3 := filepath.Dir(shardPath(dir, &id3))
	tmp := filepath.Join(sub3, "."+filepath.Base(shardPath(dir, &id3))+tempInfix+"12345")
	os.WriteFile(tmp, []byte("half a shard"), 0o600)
	stray := filepath.Join(sub3, "README")
	os.WriteFile(stray, []byte("operator notes"), 0o600)

	var logs bytes.Buffer
	s2, err := Open(dir, Options{Quota: 1 << 20, Now: c.Now, Logger: newTestLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	if used, n := s2.Usage(); n != 1 || used != HeaderLen+500 {
		t.Fatalf("Usage = %d, %d; want only shard 3", used, n)
	}
	for i, id := range [][IDLen]byte{id0, id1, id2} {
		if s2.Has(id) {
			t.Errorf("damaged shard %d indexed", i)
		}
		if _, err := os.Stat(shardPath(dir, &id)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("damaged shard %d not moved: %v", i, err)
		}
	}
	if got, err := s2.Get(id3); err != nil || len(got) != 500 {
		t.Fatalf("Get intact shard: %v", err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("temp file survived Open: %v", err)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Fatalf("Open touched a file that is not a shard's: %v", err)
	}
	q, _ := os.ReadDir(filepath.Join(dir, quarantineDir))
	if len(q) != 3 {
		t.Fatalf("quarantine holds %d files, want 3", len(q))
	}
	for _, want := range []string{"quarantined", "temporary", "unexpected"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log line mentioning %q in:\n%s", want, logs.String())
		}
	}
}

func TestQuarantineBounded(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	s := openTest(t, dir, c, 1<<30)
	for i := range maxQuarantined + 5 {
		id := testID(i)
		if err := s.Put(id, []byte("x"), 0); err != nil {
			t.Fatal(err)
		}
		os.Truncate(shardPath(dir, &id), 3)
		c.Advance(time.Second)
		if _, err := s.Get(id); !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
	}
	q, _ := os.ReadDir(filepath.Join(dir, quarantineDir))
	if len(q) != maxQuarantined {
		t.Fatalf("quarantine holds %d files, want %d", len(q), maxQuarantined)
	}
}

func TestFileModes(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "shards")
	s := openTest(t, dir, newClock(), 1<<20)
	id := testID(3)
	if err := s.Put(id, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]fs.FileMode{
		dir:                               fs.ModeDir | 0o700,
		filepath.Dir(shardPath(dir, &id)): fs.ModeDir | 0o700,
		shardPath(dir, &id):               0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{},
		{Quota: -1},
		{Quota: 1, MaxShardSize: MaxShardSize + 1},
		{Quota: 1, MaxTTL: time.Hour, DefaultTTL: 2 * time.Hour},
		{Quota: 1, MaxShards: -1},
	} {
		if _, err := Open(t.TempDir(), o); err == nil {
			t.Errorf("Open(%+v) accepted", o)
		}
	}
	// A MaxTTL below DefaultTTL lowers the default with it.
	s, err := Open(t.TempDir(), Options{Quota: 1, MaxTTL: time.Hour})
	if err != nil || s.opts.DefaultTTL != time.Hour {
		t.Fatalf("Open with a short MaxTTL: %v, default %v", err, s.opts.DefaultTTL)
	}
}

func TestConcurrent(t *testing.T) {
	c := newClock()
	s := openTest(t, t.TempDir(), c, 1<<30)
	const workers, each = 8, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				n := w*each + i
				data := []byte(fmt.Sprintf("shard %d", n))
				if err := s.Put(testID(n), data, time.Hour); err != nil {
					t.Error(err)
					return
				}
				// Everyone also re-Puts and reads a shared shard.
				if err := s.Put(testID(-1), []byte("shared"), time.Hour); err != nil {
					t.Error(err)
				}
				if got, err := s.Get(testID(n)); err != nil || !bytes.Equal(got, data) {
					t.Errorf("Get %d: %q, %v", n, got, err)
				}
				if _, err := s.Get(testID(-1)); err != nil {
					t.Error(err)
				}
				s.Has(testID(n + 1))
				if i%5 == 0 {
					s.Sweep()
				}
			}
		})
	}
	wg.Wait()
	if _, n := s.Usage(); n != workers*each+1 {
		t.Fatalf("%d shards, want %d", n, workers*each+1)
	}
}

// hangTimeout bounds every wait in these tests. It detects a hang, never
// measures speed: a loaded two-core machine under the race detector must
// still pass.
const hangTimeout = 2 * time.Minute

func TestRunStops(t *testing.T) {
	c := newClock()
	s, err := Open(t.TempDir(), Options{Quota: 1 << 20, Now: c.Now, SweepInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(testID(1), []byte("x"), time.Hour); err != nil {
		t.Fatal(err)
	}
	c.Advance(2 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(hangTimeout)
	for {
		if _, n := s.Usage(); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not sweep")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(hangTimeout):
		t.Fatal("Run did not stop with its context")
	}
}

func TestStatusOf(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want Status
	}{
		{nil, StatusOK},
		{fmt.Errorf("x: %w", ErrNotFound), StatusNotFound},
		{ErrQuota, StatusQuota},
		{ErrConflict, StatusConflict},
		{ErrTooLarge, StatusTooLarge},
		{ErrCorrupt, StatusCorrupt},
		{ErrRateLimited, StatusRateLimited},
		{ErrInvalid, StatusBadRequest},
		{malformedf("x"), StatusBadRequest},
		{errors.New("disk on fire"), StatusCorrupt},
	} {
		if got := StatusOf(tt.err); got != tt.want {
			t.Errorf("StatusOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
		if tt.err != nil && tt.want != StatusCorrupt && tt.want != StatusBadRequest && !errors.Is(tt.err, tt.want.Err()) {
			t.Errorf("%v.Err() = %v, not what %v wraps", tt.want, tt.want.Err(), tt.err)
		}
	}
	if Status(200).Err() == nil || Status(200).String() != "Status(200)" {
		t.Error("unknown status")
	}
}

func TestDelete(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s := openTest(t, dir, c, 1<<20)
	id := testID(4)
	if err := s.Put(id, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(id); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	if s.Has(id) || openTest(t, dir, c, 1<<20).Has(id) {
		t.Fatal("deleted shard present, or back after a restart")
	}
	if used, n := s.Usage(); used != 0 || n != 0 {
		t.Fatalf("Usage = %d, %d", used, n)
	}
}
