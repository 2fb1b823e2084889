package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"log/slog"
	"testing"
)

func newTestLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testFile(data []byte) []byte {
	h := fileHeader{id: wireID, expiry: 1_700_000_000_000_000_000, length: uint32(len(data)), sum: sha256.Sum256(data)}
	return marshalShardFile(&h, data)
}

func TestShardFileLayout(t *testing.T) {
	b := testFile([]byte("abc"))
	if len(b) != HeaderLen+3 || HeaderLen != 88 {
		t.Fatalf("file is %d bytes, header %d", len(b), HeaderLen)
	}
	if string(b[:8]) != "VEILSHRD" || b[8] != 1 || b[offID] != 0xaa || b[offLength+3] != 3 {
		t.Fatalf("layout: %x", b[:HeaderLen])
	}
	h, data, err := parseShardFile(b)
	if err != nil || string(data) != "abc" || h.id != wireID || h.expiry != 1_700_000_000_000_000_000 {
		t.Fatalf("parse: %+v %q %v", h, data, err)
	}
	// Every truncation and every single flipped bit is caught.
	for n := range len(b) {
		if _, _, err := parseShardFile(b[:n]); !errors.Is(err, errDamaged) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	for i := range len(b) {
		if i >= offExpiry && i < offLength || i >= offID && i < offExpiry {
			continue // the expiry and ID are checked by the Store, not the parser
		}
		for bit := range 8 {
			c := bytes.Clone(b)
			c[i] ^= 1 << bit
			if _, _, err := parseShardFile(c); !errors.Is(err, errDamaged) {
				t.Fatalf("bit %d of byte %d flipped: %v", bit, i, err)
			}
		}
	}
}

func FuzzParseShardFile(f *testing.F) {
	valid := testFile([]byte("content"))
	f.Add(valid)                         // valid file
	f.Add(testFile(nil))                 // valid: empty content
	f.Add(valid[:HeaderLen])             // invalid: content missing
	f.Add(valid[:HeaderLen-1])           // invalid: header truncated
	f.Add(append(bytes.Clone(valid), 0)) // invalid: trailing byte
	bad := bytes.Clone(valid)
	bad[HeaderLen] ^= 1
	f.Add(bad) // invalid: content hash mismatch
	bad = bytes.Clone(valid)
	bad[offVersion] = 2
	f.Add(bad) // invalid: unknown version
	bad = bytes.Clone(valid)
	bad[offReserved] = 1
	f.Add(bad)                // invalid: reserved byte set
	f.Add([]byte("VEILSHRD")) // invalid: magic only
	f.Fuzz(func(t *testing.T, b []byte) {
		h, data, err := parseShardFile(b)
		if err != nil {
			if !errors.Is(err, errDamaged) {
				t.Fatalf("error %v does not wrap errDamaged", err)
			}
			return
		}
		if out := marshalShardFile(&h, data); !bytes.Equal(out, b) {
			t.Fatalf("re-marshal differs:\n in  %x\n out %x", b, out)
		}
	})
}
