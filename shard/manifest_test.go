package shard

import (
	"bytes"
	"errors"
	"testing"
)

func testManifest(size int64) *Manifest {
	m := &Manifest{Params: small, FileSize: size}
	m.Hashes = make([][32]byte, m.Segments()*int64(small.N()))
	for i := range m.Hashes {
		m.Hashes[i][0], m.Hashes[i][31] = byte(i), byte(i>>8)
	}
	return m
}

func TestManifestRoundTrip(t *testing.T) {
	for _, size := range []int64{0, 1, 4096, 4097, 100000} {
		m := testManifest(size)
		b := m.Marshal()
		if int64(len(b)) != small.manifestSize(size) {
			t.Fatalf("%d bytes", len(b))
		}
		got, err := ParseManifest(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Marshal(), b) || got.FileSize != size || got.Params != small {
			t.Fatal("round trip differs")
		}
		for n := 0; n < len(b); n++ {
			if _, err := ParseManifest(b[:n]); !errors.Is(err, ErrTampered) {
				t.Fatalf("truncated to %d of %d accepted", n, len(b))
			}
		}
		if _, err := ParseManifest(append(b, 0)); err == nil {
			t.Fatal("trailing byte accepted")
		}
	}
	b := testManifest(10).Marshal()
	for _, mut := range []func([]byte){
		func(b []byte) { b[0] = 2 },    // version
		func(b []byte) { b[1] = 0 },    // k
		func(b []byte) { b[3] = 11 },   // segment size below the minimum
		func(b []byte) { b[19] = 2 },   // segment count
		func(b []byte) { b[4] = 0x80 }, // file size over the maximum
	} {
		c := bytes.Clone(b)
		mut(c)
		if _, err := ParseManifest(c); err == nil {
			t.Fatalf("mutated manifest %x accepted", c[:20])
		}
	}
}

func TestHeadRoundTrip(t *testing.T) {
	h := &head{p: small, manifestSize: 5000, hashes: make([][32]byte, 2*small.N())}
	h.hashes[9][0] = 9
	b := h.marshal()
	got, err := parseHead(b, small)
	if err != nil || !bytes.Equal(got.marshal(), b) {
		t.Fatalf("%v", err)
	}
	b[len(b)-1] = 1
	if _, err := parseHead(b, small); err == nil {
		t.Fatal("nonzero padding accepted")
	}
	if _, err := parseHead(h.marshal(), TestnetParams); err == nil {
		t.Fatal("head of other params accepted")
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add(testManifest(0).Marshal())            // valid: empty file, one segment
	f.Add(testManifest(5000).Marshal())         // valid: two segments
	f.Add(testManifest(5000).Marshal()[:50])    // truncated inside the hashes
	f.Add([]byte{1, 3, 2, 12})                  // header cut short
	f.Add(append(testManifest(1).Marshal(), 0)) // trailing byte
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.Marshal(), b) {
			t.Fatal("re-marshal differs")
		}
	})
}
