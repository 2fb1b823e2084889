package shard

import (
	"bytes"
	"errors"
	"strings"
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

// checkManifestBytes demands that b parses, re-marshals to b, and that
// every truncation and a trailing byte are refused.
func checkManifestBytes(t *testing.T, b []byte) *Manifest {
	t.Helper()
	got, err := ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), b) {
		t.Fatal("round trip differs")
	}
	for n := 0; n < len(b); n++ {
		if _, err := ParseManifest(b[:n]); !errors.Is(err, ErrTampered) {
			t.Fatalf("truncated to %d of %d accepted", n, len(b))
		}
	}
	if _, err := ParseManifest(append(bytes.Clone(b), 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	return got
}

func TestManifestRoundTrip(t *testing.T) {
	for _, size := range []int64{0, 1, 4096, 4097, 100000} {
		m := testManifest(size)
		m.Meta = Meta{Content: ContentTree, Name: "holiday photos"}
		b := m.Marshal()
		if int64(len(b)) != small.manifestSize(size) {
			t.Fatalf("%d bytes", len(b))
		}
		got := checkManifestBytes(t, b)
		if got.FileSize != size || got.Params != small || got.Meta != m.Meta || got.Version != ManifestVersion {
			t.Fatalf("round trip gave %+v", got)
		}
	}
	b := testManifest(10).Marshal()
	for _, mut := range []func([]byte){
		func(b []byte) { b[0] = 3 },               // version
		func(b []byte) { b[1] = 0 },               // k
		func(b []byte) { b[3] = 11 },              // segment size below the minimum
		func(b []byte) { b[19] = 2 },              // segment count
		func(b []byte) { b[4] = 0x80 },            // file size over the maximum
		func(b []byte) { b[20] = 2 },              // unknown content type
		func(b []byte) { b[22+3] = 'x' },          // a byte after an empty name
		func(b []byte) { b[21] = 1 },              // a name of one zero byte
		func(b []byte) { b[0] = 1 },               // a version-2 body read as version 1
		func(b []byte) { b[21] = 0xff },           // name length into the zero padding
		func(b []byte) { b[22+254] = 1 },          // the field's last byte
		func(b []byte) { b[12] = 0x01 },           // segment count, high byte
		func(b []byte) { b[20] = 0xff },           // content type, far out
		func(b []byte) { copy(b[21:], "\x02..") }, // the parent directory
	} {
		c := bytes.Clone(b)
		mut(c)
		if _, err := ParseManifest(c); err == nil {
			t.Fatalf("mutated manifest %x accepted", c[:24])
		}
	}
}

// TestManifestVersion1 checks that a manifest of the first layout, with
// no content type and no name, still parses, as an unnamed file, so links
// shared before version 2 still fetch.
func TestManifestVersion1(t *testing.T) {
	m := testManifest(5000)
	m.Version = manifestV1
	b := m.Marshal()
	if len(b) != manifestHeaderSizeV1+len(m.Hashes)*HashSize || b[0] != 1 {
		t.Fatalf("version-1 manifest of %d bytes, version %d", len(b), b[0])
	}
	got := checkManifestBytes(t, b)
	if got.Version != manifestV1 || got.Meta != (Meta{}) || got.FileSize != 5000 {
		t.Fatalf("version 1 parsed as %+v", got)
	}
}

// hostileNames are names a sharer could put in a manifest to make a
// fetcher write outside the directory it fetches into, or to write
// terminal escapes to its screen.
var hostileNames = []string{
	"..", ".", "../x", "a/b", "/etc/passwd", `..\x`, `a\b`, "x\x00y", "\x1b[2Jbye", "tab\there",
	"new\nline", "del\x7f", "c1\u0085", strings.Repeat("a", MaxNameLen+1), "\xff\xfe",
}

func TestManifestRefusesHostileNames(t *testing.T) {
	for _, name := range hostileNames {
		if err := CheckName(name); err == nil {
			t.Errorf("CheckName(%q) passed", name)
		}
		if len(name) > MaxNameLen {
			continue
		}
		// The bytes a hostile sharer would write, by hand: Marshal
		// writes whatever it is given.
		m := testManifest(10)
		m.Name = name
		if _, err := ParseManifest(m.Marshal()); !errors.Is(err, ErrTampered) {
			t.Errorf("a manifest naming %q: %v", name, err)
		}
	}
	for _, name := range []string{"a", "report.pdf", ".bashrc", "..a", "a..", "名前.txt", "with space", strings.Repeat("é", MaxNameLen/2)} {
		if err := CheckName(name); err != nil {
			t.Errorf("CheckName(%q): %v", name, err)
		}
	}
}

// TestHostileNameRefusedOnFetch: a sharer who holds the file key seals a
// manifest naming "../escape"; the decoder refuses the share before it
// writes a byte.
func TestHostileNameRefusedOnFetch(t *testing.T) {
	data := testFile(21, 100)
	e, err := NewEncoder(bytes.NewReader(data), int64(len(data)), small, testRand(21))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetMeta(Meta{Name: "../escape"}); err == nil {
		t.Fatal("SetMeta took ../escape")
	}
	e.meta.Name = "../escape" // what a hostile encoder would do
	s := &Share{}
	for {
		seg, err := e.Next()
		if err != nil {
			break
		}
		s.Segments = append(s.Segments, seg)
	}
	if s.Link, err = e.Link(); err != nil {
		t.Fatal(err)
	}
	got, err := decodeFrom(s.Link, s.store())
	if !errors.Is(err, ErrTampered) || len(got) != 0 {
		t.Fatalf("hostile name: err %v, %d bytes written", err, len(got))
	}
}

// TestMetaTravels: the content type and name given to the encoder come
// out of the decoder's manifest.
func TestMetaTravels(t *testing.T) {
	data := testFile(22, 3*small.SegmentSize+1)
	e, err := NewEncoder(bytes.NewReader(data), int64(len(data)), small, testRand(22))
	if err != nil {
		t.Fatal(err)
	}
	want := Meta{Content: ContentTree, Name: "tree"}
	if err := e.SetMeta(want); err != nil {
		t.Fatal(err)
	}
	s := &Share{}
	for {
		seg, err := e.Next()
		if err != nil {
			break
		}
		s.Segments = append(s.Segments, seg)
	}
	s.Link, _ = e.Link()
	var out bytes.Buffer
	st := s.store()
	d, _ := NewDecoder(s.Link, &out)
	for {
		w, err := d.Want()
		if err != nil {
			break
		}
		shards := make([][]byte, len(w.IDs))
		for i, id := range w.IDs {
			shards[i] = st[id]
		}
		if err := d.Add(shards); err != nil {
			t.Fatal(err)
		}
	}
	if d.Manifest() == nil || d.Manifest().Meta != want || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("manifest %+v, %d bytes", d.Manifest(), out.Len())
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
	named := testManifest(5000)
	named.Meta = Meta{Content: ContentTree, Name: "dir"}
	v1 := testManifest(10)
	v1.Version = manifestV1
	hostile := testManifest(1)
	hostile.Name = "../up"
	f.Add(testManifest(0).Marshal())            // valid: empty file, one segment
	f.Add(testManifest(5000).Marshal())         // valid: two segments
	f.Add(named.Marshal())                      // valid: a named directory
	f.Add(v1.Marshal())                         // valid: version 1, no name
	f.Add(hostile.Marshal())                    // invalid: a name that climbs out
	f.Add(testManifest(5000).Marshal()[:50])    // truncated inside the name field
	f.Add([]byte{2, 3, 2, 12})                  // header cut short
	f.Add(append(testManifest(1).Marshal(), 0)) // trailing byte
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.Marshal(), b) {
			t.Fatal("re-marshal differs")
		}
		if CheckName(m.Name) != nil {
			t.Fatalf("parsed a name CheckName refuses: %q", m.Name)
		}
	})
}
