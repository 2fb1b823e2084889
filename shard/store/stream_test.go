package store

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func TestServeOverAStream(t *testing.T) {
	st, err := Open(t.TempDir(), Options{Quota: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), b, st, nil) }()
	c := NewClient(a)
	id := [IDLen]byte{1, 2, 3}
	data := bytes.Repeat([]byte("shard"), 1000)
	if err := c.Put(id, data, time.Hour); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Has(id); !ok || err != nil {
		t.Fatalf("has: %v %v", ok, err)
	}
	got, err := c.Get(id)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %v", err)
	}
	if ok, err := c.Has([IDLen]byte{9}); ok || err != nil {
		t.Fatalf("has missing: %v %v", ok, err)
	}
	if _, err := c.Get([IDLen]byte{9}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	if err := c.Put(id, []byte("other"), 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("conflicting put: %v", err)
	}
	if err := c.Put([IDLen]byte{7}, make([]byte, 2<<20), 0); !errors.Is(err, ErrQuota) {
		t.Fatalf("put over quota: %v", err)
	}
	a.Close()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

func TestReadFrameRefusesOversize(t *testing.T) {
	head := []byte{byte(MsgPut), 0xff, 0xff, 0xff, 0xff}
	if _, _, err := ReadFrame(bytes.NewReader(head)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversize frame: %v", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	// A valid HAS frame, a truncated one, and an oversize length.
	f.Add(append([]byte{byte(MsgHas), 0, 0, 0, 32}, make([]byte, 32)...))
	f.Add([]byte{byte(MsgHas), 0, 0})
	f.Add([]byte{byte(MsgPut), 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, body, err := ReadFrame(bytes.NewReader(b))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := WriteFrame(&out, typ, body); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), b[:out.Len()]) {
			t.Fatal("re-framed bytes differ")
		}
	})
}
