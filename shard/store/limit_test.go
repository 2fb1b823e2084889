package store

import (
	"sync"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	cfg := LimiterConfig{BytesPerSecond: 1 << 20, ByteBurst: MaxPutLen, RequestsPerSecond: 10, RequestBurst: 3}
	l, err := NewLimiter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	// The request bucket: a burst of 3, then 10 a second.
	for i := range 3 {
		if !l.Allow(t0, 0) {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if l.Allow(t0, 0) {
		t.Fatal("request past the burst allowed")
	}
	if !l.Allow(t0.Add(100*time.Millisecond), 0) {
		t.Fatal("request after 1/10 s refused")
	}
	if l.Allow(t0.Add(100*time.Millisecond), 0) {
		t.Fatal("two requests in 1/10 s")
	}

	// The byte bucket: the largest PUT passes on a full bucket; the next
	// needs the bytes to come back.
	l, _ = NewLimiter(cfg)
	if !l.Allow(t0, MaxPutLen) {
		t.Fatal("largest PUT refused on a full bucket")
	}
	if l.Allow(t0.Add(time.Second), MaxPutLen) {
		t.Fatal("second largest PUT after 1 s (1 MiB back) allowed")
	}
	// A refused request took nothing: after 4 s more the bucket holds about
	// 5 MiB, enough.
	if !l.Allow(t0.Add(5*time.Second), MaxPutLen) {
		t.Fatal("largest PUT after 5 s refused")
	}
	if l.Allow(t0.Add(5*time.Second), MaxPutLen+1) {
		t.Fatal("more than the burst allowed")
	}
	// Time going backwards adds nothing.
	if l.Allow(t0, 1<<20) {
		t.Fatal("clock going back refilled the bucket")
	}
	if l.Allow(t0, -1) {
		t.Fatal("negative size allowed")
	}
}

func TestLimiterConfig(t *testing.T) {
	if _, err := NewLimiter(DefaultLimiterConfig()); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []LimiterConfig{
		{},
		{BytesPerSecond: 1, RequestsPerSecond: 1, RequestBurst: 1, ByteBurst: MaxPutLen - 1},
		{BytesPerSecond: 1, RequestsPerSecond: 0, RequestBurst: 1, ByteBurst: MaxPutLen},
		{BytesPerSecond: 1, RequestsPerSecond: 1, RequestBurst: 0, ByteBurst: MaxPutLen},
	} {
		if _, err := NewLimiter(cfg); err == nil {
			t.Errorf("NewLimiter(%+v) accepted", cfg)
		}
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l, _ := NewLimiter(LimiterConfig{BytesPerSecond: 1, ByteBurst: MaxPutLen, RequestsPerSecond: 1, RequestBurst: 100})
	now := time.Unix(1000, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 10 {
		wg.Go(func() {
			for range 50 {
				if l.Allow(now, 1) {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 100 {
		t.Fatalf("%d requests allowed, want exactly the burst of 100", allowed)
	}
}
