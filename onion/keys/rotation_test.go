package keys

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func onionFileCount(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, OnionFile))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := parseOnionFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

func rotateIfDue(t *testing.T, s *Store, want bool) {
	t.Helper()
	rotated, err := s.RotateIfDue()
	if err != nil || rotated != want {
		t.Fatalf("RotateIfDue() = %v, %v; want %v", rotated, err, want)
	}
}

func TestRotation(t *testing.T) {
	dir, clock := dataDir(t), newFakeClock()
	s := openTest(t, dir, clock, 1)
	first, _ := s.OnionKeys()

	clock.Advance(DefaultRotateEvery - time.Second)
	rotateIfDue(t, s, false)

	clock.Advance(time.Second)
	rotateIfDue(t, s, true)
	rotatedAt := clock.Now()
	cur, prev := s.OnionKeys()
	if prev != first || cur.Public() == first.Public() {
		t.Fatal("after rotation the old current key must be previous")
	}
	if !cur.Created().Equal(rotatedAt) || !cur.Cert().Expires.Equal(rotatedAt.Add(DefaultRotateEvery+DefaultGrace)) {
		t.Fatalf("new cert: created %v expires %v", cur.Created(), cur.Cert().Expires)
	}
	for _, k := range []*OnionKey{cur, first} {
		if got, ok := s.FindOnionKey(k.Public()); !ok || got != k {
			t.Fatal("FindOnionKey misses a usable key")
		}
	}
	if _, ok := s.FindOnionKey([32]byte{1}); ok {
		t.Fatal("FindOnionKey found an unknown key")
	}
	if n := onionFileCount(t, dir); n != 2 {
		t.Fatalf("onion file holds %d keys after rotation, want 2", n)
	}
	// A restart inside the grace period keeps both keys.
	reopened := openTest(t, dir, clock, 9)
	rcur, rprev := reopened.OnionKeys()
	if rcur.Public() != cur.Public() || rprev == nil || rprev.Public() != first.Public() {
		t.Fatal("restart lost the rotation")
	}

	clock.Advance(DefaultGrace - time.Second)
	if _, prev := s.OnionKeys(); prev == nil {
		t.Fatal("previous key dropped before the grace period ended")
	}
	clock.Advance(time.Second)
	// The grace period ends on time even before RotateIfDue runs.
	if _, prev := s.OnionKeys(); prev != nil {
		t.Fatal("previous key still offered after the grace period")
	}
	if _, ok := s.FindOnionKey(first.Public()); ok {
		t.Fatal("FindOnionKey found a key past its grace period")
	}
	rotateIfDue(t, s, false)
	if n := onionFileCount(t, dir); n != 1 {
		t.Fatalf("onion file holds %d keys after the grace period, want 1", n)
	}
	if first.Private() != [32]byte{} {
		t.Fatal("dropped key was not wiped")
	}
	if _, err := first.SharedSecret(cur.Public()); err != ErrRetired {
		t.Fatalf("SharedSecret on a dropped key: err = %v, want ErrRetired", err)
	}
}

func TestRotationAfterLongDowntime(t *testing.T) {
	dir, clock := dataDir(t), newFakeClock()
	s := openTest(t, dir, clock, 1)
	old, _ := s.OnionKeys()
	clock.Advance(30 * 24 * time.Hour)
	// Open rotates at once, and drops the old key, whose cert has expired.
	s = openTest(t, dir, clock, 2)
	cur, prev := s.OnionKeys()
	if prev != nil || cur.Public() == old.Public() || !cur.Created().Equal(clock.Now()) {
		t.Fatal("want a fresh current key and no previous one")
	}
	if n := onionFileCount(t, dir); n != 1 {
		t.Fatalf("onion file holds %d keys, want 1", n)
	}
}

func TestRotationWhenRotateEveryShrinks(t *testing.T) {
	dir, clock := dataDir(t), newFakeClock()
	openTest(t, dir, clock, 1)
	clock.Advance(2 * time.Hour)
	s, err := Open(dir, Options{Now: clock.Now, Rand: testRand(2), RotateEvery: time.Hour, Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cur, prev := s.OnionKeys()
	if !cur.Created().Equal(clock.Now()) || prev == nil {
		t.Fatal("a key older than the new RotateEvery was not rotated at Open")
	}
	if want := clock.Now().Add(2 * time.Hour); !cur.Cert().Expires.Equal(want) {
		t.Fatalf("expires %v, want %v", cur.Cert().Expires, want)
	}
}

func TestSharedSecretAgrees(t *testing.T) {
	s := openTest(t, dataDir(t), newFakeClock(), 1)
	relay, _ := s.OnionKeys()
	client := testOnionKey(t, testIdentity(t, 2), 3, t0)
	a, err := relay.SharedSecret(client.Public())
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.SharedSecret(relay.Public())
	if err != nil || a != b {
		t.Fatalf("shared secrets differ: %v", err)
	}
	if _, err := relay.SharedSecret([32]byte{}); err == nil {
		t.Fatal("accepted a low-order point")
	}
}

// Run with -race: lookups during rotations must not race.
func TestStoreConcurrentUse(t *testing.T) {
	clock := newFakeClock()
	s := openTest(t, dataDir(t), clock, 1)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				cur, _ := s.OnionKeys()
				// cur may have been dropped meanwhile; finding another key is wrong.
				if k, ok := s.FindOnionKey(cur.Public()); ok && k != cur {
					t.Error("FindOnionKey returned another key")
				}
				_, _ = cur.SharedSecret(cur.Public())
			}
		})
	}
	for range 10 {
		clock.Advance(DefaultRotateEvery)
		if _, err := s.RotateIfDue(); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}
