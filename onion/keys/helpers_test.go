package keys

import (
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testRand is a deterministic key source: ChaCha8 implements io.Reader.
func testRand(seed byte) io.Reader { return rand.NewChaCha8([32]byte{seed}) }

// t0 is an arbitrary fixed start time for clocks in tests.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeClock is a settable clock, safe for the concurrent test.
type fakeClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func testIdentity(t testing.TB, seed byte) *Identity {
	t.Helper()
	id, err := GenerateIdentity(testRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func testOnionKey(t testing.TB, id *Identity, seed byte, created time.Time) *OnionKey {
	t.Helper()
	k, err := GenerateOnionKey(id, testRand(seed), created, created.Add(DefaultRotateEvery+DefaultGrace))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testCert(t testing.TB) *OnionCert {
	return testOnionKey(t, testIdentity(t, 1), 2, t0).Cert()
}

// dataDir returns a not yet existing data directory: t.TempDir itself is
// made with the umask (often 0755), which Open rightly refuses.
func dataDir(t *testing.T) string { return filepath.Join(t.TempDir(), "data") }
