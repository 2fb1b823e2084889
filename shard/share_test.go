package shard

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
)

// small are the test params: the testnet code with the smallest segment.
var small = Params{K: 3, M: 2, SegmentSize: MinSegmentSize}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

func testRand(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return rand.NewChaCha8(s)
}

func testFile(seed uint64, n int) []byte {
	b := make([]byte, n)
	testRand(seed + 1000).Read(b)
	return b
}

func mustEncode(t testing.TB, data []byte, p Params, seed uint64) *Share {
	t.Helper()
	s, err := Encode(bytes.NewReader(data), int64(len(data)), p, testRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// store maps IDs to shard data, as the relays together would.
func (s *Share) store() map[[32]byte][]byte {
	m := map[[32]byte][]byte{}
	for _, seg := range s.Segments {
		for _, sh := range seg.Shards {
			m[sh.ID] = sh.Data
		}
	}
	return m
}

func decodeFrom(l *Link, m map[[32]byte][]byte) ([]byte, error) {
	var out bytes.Buffer
	err := Decode(l, func(id [32]byte) []byte { return m[id] }, &out)
	return out.Bytes(), err
}

func TestRoundTrip(t *testing.T) {
	S := small.SegmentSize
	for _, p := range []Params{small, {K: 4, M: 2, SegmentSize: 8192}, {K: 1, M: 1, SegmentSize: 4096}} {
		for _, n := range []int{0, 1, S - 1, S, S + 1, 3*S + 17, 30*S + 5} {
			t.Run(fmt.Sprintf("k%d-m%d-s%d-%d", p.K, p.M, p.SegmentSize, n), func(t *testing.T) {
				data := testFile(uint64(n), n)
				s := mustEncode(t, data, p, 1)
				var kinds [4]int
				for _, seg := range s.Segments {
					kinds[seg.Kind]++
					for _, sh := range seg.Shards {
						if len(sh.Data) != p.ShardSize() {
							t.Fatalf("%s shard of %d bytes, want %d", seg.Kind, len(sh.Data), p.ShardSize())
						}
					}
				}
				if int64(kinds[KindData]) != p.Segments(int64(n)) || kinds[KindHead] != 1 || int64(kinds[KindManifest]) != p.ManifestSegments(int64(n)) {
					t.Fatalf("segments by kind %v", kinds)
				}
				all := s.Link.AllShardIDs(int64(n))
				if len(all) != len(s.Segments) {
					t.Fatalf("AllShardIDs lists %d segments, the share has %d", len(all), len(s.Segments))
				}
				for j, seg := range s.Segments {
					if all[j].Kind != seg.Kind || all[j].Index != seg.Index || !slices.Equal(all[j].IDs, seg.IDs()) {
						t.Fatalf("AllShardIDs[%d] = %v %d, the share has %v %d", j, all[j].Kind, all[j].Index, seg.Kind, seg.Index)
					}
				}
				if got := int64(len(s.store())) * int64(p.ShardSize()); got != p.StoredSize(int64(n)) {
					t.Fatalf("stored %d bytes, StoredSize says %d", got, p.StoredSize(int64(n)))
				}
				got, err := decodeFrom(s.Link, s.store())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("got %d bytes back, want %d (or content differs)", len(got), len(data))
				}
			})
		}
	}
}

// TestDeterministic pins the whole share for a fixed rand: any change to a
// byte layout, label or the code changes this digest (SPEC.md §10).
func TestDeterministic(t *testing.T) {
	digest := func() string {
		s := mustEncode(t, testFile(7, 3*small.SegmentSize+5), small, 7)
		h := sha256.New()
		h.Write([]byte(s.Link.String()))
		for _, seg := range s.Segments {
			for _, sh := range seg.Shards {
				h.Write(sh.ID[:])
				h.Write(sh.Data)
			}
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	a, b := digest(), digest()
	if a != b {
		t.Fatal("two encodings with the same rand differ")
	}
	const want = "6b02539197a1e173b5e81ca1eb40815a80d9c27c309a466adf4b3aea0ba87d12"
	if a != want {
		t.Fatalf("share digest %s, want %s: a wire change must update SPEC.md and this vector", a, want)
	}
}

// dropCombos calls f with every set of m shard positions out of n.
func dropCombos(n, m int, f func(drop []int)) {
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		if len(cur) == m {
			f(cur)
			return
		}
		for i := start; i < n; i++ {
			rec(i+1, append(cur, i))
		}
	}
	rec(0, nil)
}

func TestLoseAnyM(t *testing.T) {
	data := testFile(3, 30*small.SegmentSize+99) // several manifest segments too
	s := mustEncode(t, data, small, 3)
	dropCombos(small.N(), small.M, func(drop []int) {
		m := s.store()
		for _, seg := range s.Segments {
			for _, i := range drop {
				if i < len(seg.Shards) {
					delete(m, seg.Shards[i].ID)
				}
			}
		}
		got, err := decodeFrom(s.Link, m)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("dropping shards %v of every segment: err %v, %d bytes", drop, err, len(got))
		}
	})
}

func TestLoseMPlusOne(t *testing.T) {
	data := testFile(4, 3*small.SegmentSize)
	s := mustEncode(t, data, small, 4)
	m := s.store()
	seg := s.Segments[1] // data segment 1
	for _, i := range []int{0, 2, 4} {
		delete(m, seg.Shards[i].ID)
	}
	got, err := decodeFrom(s.Link, m)
	var se *ShardsError
	if !errors.Is(err, ErrNotEnoughShards) || !errors.As(err, &se) || errors.Is(err, ErrTampered) {
		t.Fatalf("err %v, want ErrNotEnoughShards", err)
	}
	if se.Kind != KindData || se.Index != 1 || se.Good != 2 || se.Need != 3 {
		t.Fatalf("error %+v", se)
	}
	if len(got) != small.SegmentSize {
		t.Fatalf("wrote %d bytes before failing, want segment 0 only", len(got))
	}
	t.Log(err)

	// The head: all M+1 replicas gone.
	m = s.store()
	for _, sh := range s.Segments[len(s.Segments)-1].Shards {
		delete(m, sh.ID)
	}
	if _, err := decodeFrom(s.Link, m); !errors.Is(err, ErrNotEnoughShards) {
		t.Fatalf("without a head: %v", err)
	}
}

func TestCorruptShardSkipped(t *testing.T) {
	data := testFile(5, 2*small.SegmentSize+1)
	s := mustEncode(t, data, small, 5)
	for _, bad := range []int{0, 3} {
		m := s.store()
		for _, seg := range s.Segments {
			i := bad
			if i >= len(seg.Shards) {
				i = 0 // the head has M+1 replicas
			}
			d := bytes.Clone(seg.Shards[i].Data)
			d[len(d)/2] ^= 1
			m[seg.Shards[i].ID] = d
		}
		got, err := decodeFrom(s.Link, m)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("shard %d corrupted everywhere: %v", bad, err)
		}
	}
	// M+1 corrupted: clear error that says tampering.
	m := s.store()
	for i := 0; i <= small.M; i++ {
		sh := s.Segments[0].Shards[i]
		m[sh.ID] = append(bytes.Clone(sh.Data[1:]), 0)
	}
	_, err := decodeFrom(s.Link, m)
	if !errors.Is(err, ErrNotEnoughShards) || !errors.Is(err, ErrTampered) {
		t.Fatalf("err %v, want not enough shards and tampered", err)
	}
	t.Log(err)
}

// TestDecoderCountsRefusedShards: every shard the decoder drops for its
// hash, and every head replica that does not open, is counted, so that a
// fetch can say that relays served damaged data (and a test can tell a
// fetch that refused a bad shard from one that never saw it).
func TestDecoderCountsRefusedShards(t *testing.T) {
	data := testFile(9, 2*small.SegmentSize+1)
	s := mustEncode(t, data, small, 9)
	m := s.store()
	for _, seg := range s.Segments {
		d := bytes.Clone(seg.Shards[0].Data)
		d[7] ^= 1
		m[seg.Shards[0].ID] = d
	}
	var out bytes.Buffer
	d, err := NewDecoder(s.Link, &out)
	if err != nil {
		t.Fatal(err)
	}
	for {
		want, err := d.Want()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		shards := make([][]byte, len(want.IDs))
		for i, id := range want.IDs {
			shards[i] = m[id]
		}
		// Offered first without the shards that make up for the bad
		// one, then again with them: the bad shard counts once.
		if want.Kind != KindHead {
			short := slices.Clone(shards)
			for i := small.K; i < len(short); i++ {
				short[i] = nil
			}
			if err := d.Add(short); !errors.Is(err, ErrNotEnoughShards) {
				t.Fatalf("%v segment %d with a bad shard and no parity: %v", want.Kind, want.Index, err)
			}
		}
		if err := d.Add(shards); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("wrong file back")
	}
	// Shard 0 of every data and manifest segment, and head replica 0.
	if got, want := d.Refused(), len(s.Segments); got != want {
		t.Fatalf("Refused() = %d, want %d", got, want)
	}
}

func TestShortShardAndWrongSize(t *testing.T) {
	data := testFile(6, 10)
	s := mustEncode(t, data, small, 6)
	m := s.store()
	sh := s.Segments[0].Shards[0]
	m[sh.ID] = sh.Data[:len(sh.Data)-1]
	if got, err := decodeFrom(s.Link, m); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("a short shard was not skipped: %v", err)
	}
}

func TestSwappedSegmentsRefused(t *testing.T) {
	data := testFile(8, 3*small.SegmentSize)
	s := mustEncode(t, data, small, 8)
	m := s.store()
	a, b := s.Segments[0], s.Segments[1]
	for i := range a.Shards {
		m[a.Shards[i].ID], m[b.Shards[i].ID] = b.Shards[i].Data, a.Shards[i].Data
	}
	got, err := decodeFrom(s.Link, m)
	if !errors.Is(err, ErrTampered) || len(got) != 0 {
		t.Fatalf("swapped segments: err %v, %d bytes written", err, len(got))
	}
}

func TestShardFromAnotherShareRefused(t *testing.T) {
	data := testFile(9, small.SegmentSize+3)
	s1 := mustEncode(t, data, small, 9)
	s2 := mustEncode(t, data, small, 10) // same file, fresh key
	m := s1.store()
	for i := 0; i <= small.M; i++ { // M+1 shards of data segment 0 replaced
		m[s1.Segments[0].Shards[i].ID] = s2.Segments[0].Shards[i].Data
	}
	if _, err := decodeFrom(s1.Link, m); !errors.Is(err, ErrTampered) {
		t.Fatalf("spliced shards: %v", err)
	}
	// Another share's head under this share's IDs.
	m = s1.store()
	h1, h2 := s1.Segments[len(s1.Segments)-1], s2.Segments[len(s2.Segments)-1]
	for i := range h1.Shards {
		m[h1.Shards[i].ID] = h2.Shards[i].Data
	}
	if _, err := decodeFrom(s1.Link, m); !errors.Is(err, ErrTampered) {
		t.Fatalf("spliced head: %v", err)
	}
	// The other share's link cannot read this share's shards.
	if _, err := decodeFrom(s2.Link, s1.store()); err == nil {
		t.Fatal("share 2's link decoded share 1")
	}
}

// TestSegmentBinding checks the AEAD layer itself (SPEC.md §4.2), under the
// manifest's hash checks: a segment sealed for one index or last flag does
// not open as another, nor under another share's key.
func TestSegmentBinding(t *testing.T) {
	var k1, k2 [32]byte
	k2[0] = 1
	c1, _ := newCodec(small, &k1)
	c2, _ := newCodec(small, &k2)
	buf := c1.newSegmentBuf()
	copy(buf, "segment one")
	seg := c1.seal(KindData, 1, false, buf)
	shards := make([][]byte, small.N())
	hashes := make([][32]byte, small.N())
	for i, sh := range seg.Shards {
		shards[i], hashes[i] = sh.Data, sh.Hash
	}
	if _, _, err := c1.open(KindData, 1, false, shards, hashes); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		c     *codec
		kind  Kind
		index uint64
		last  bool
	}{
		{"reordered", c1, KindData, 0, false},
		{"truncated (taken as last)", c1, KindData, 1, true},
		{"as a manifest segment", c1, KindManifest, 1, false},
		{"other share", c2, KindData, 1, false},
	} {
		if _, _, err := tc.c.open(tc.kind, tc.index, tc.last, shards, hashes); !errors.Is(err, ErrTampered) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestTruncatedManifestRefused forges, with the file key, a manifest that
// drops the last segment: the new last segment was sealed as not-last, so it
// is refused (SPEC.md §4.2).
func TestTruncatedManifestRefused(t *testing.T) {
	S := small.SegmentSize
	data := testFile(11, 3*S)
	s := mustEncode(t, data, small, 11)
	c, _ := newCodec(small, &s.Link.FileKey)
	mf := &Manifest{Params: small, FileSize: int64(2 * S)}
	for _, seg := range s.Segments[:2] {
		for _, sh := range seg.Shards {
			mf.Hashes = append(mf.Hashes, sh.Hash)
		}
	}
	e := &Encoder{c: c, fileKey: s.Link.FileKey, size: mf.FileSize, manifest: mf.Marshal()}
	e.finish()
	m := s.store()
	for _, seg := range e.tail {
		for _, sh := range seg.Shards {
			m[sh.ID] = sh.Data
		}
	}
	got, err := decodeFrom(e.link, m)
	if !errors.Is(err, ErrTampered) || len(got) != S {
		t.Fatalf("truncated manifest: err %v, %d bytes", err, len(got))
	}
}

func TestDecoderStopsShort(t *testing.T) {
	s := mustEncode(t, testFile(12, 2*small.SegmentSize), small, 12)
	m := s.store()
	d, err := NewDecoder(s.Link, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // head, manifest, data 0
		w, _ := d.Want()
		sh := make([][]byte, len(w.IDs))
		for i, id := range w.IDs {
			sh[i] = m[id]
		}
		if err := d.Add(sh); err != nil {
			t.Fatal(err)
		}
	}
	if d.Done() || d.Manifest() == nil || d.Manifest().Segments() != 2 {
		t.Fatal("decoder claims done, or lost its manifest")
	}
	w, err := d.Want()
	if err != nil || w.Kind != KindData || w.Index != 1 || w.Need != small.K {
		t.Fatalf("want %+v %v", w, err)
	}
}

func TestShortInput(t *testing.T) {
	_, err := Encode(bytes.NewReader(make([]byte, 5000)), 9000, small, testRand(1))
	if !errors.Is(err, ErrShortInput) {
		t.Fatalf("err %v", err)
	}
	if _, err := Encode(bytes.NewReader(nil), small.MaxFileSize()+1, small, testRand(1)); err == nil {
		t.Fatal("a file over MaxFileSize was accepted")
	}
}

func TestShardIDsUnlinkable(t *testing.T) {
	data := testFile(13, 30*small.SegmentSize)
	s1 := mustEncode(t, data, small, 13)
	s2 := mustEncode(t, data, small, 14)
	seen := map[[32]byte]bool{}
	var ids [][32]byte
	for _, s := range []*Share{s1, s2} {
		for _, seg := range s.Segments {
			for _, sh := range seg.Shards {
				if seen[sh.ID] {
					t.Fatalf("shard ID %x repeats", sh.ID[:8])
				}
				seen[sh.ID] = true
				if s == s1 {
					ids = append(ids, sh.ID)
				}
			}
		}
	}
	// No shared prefix beyond chance: ~160 IDs give ~13k pairs, so a common
	// prefix of 3 bytes (24 bits) would be a 1-in-1000 event.
	ones := 0
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			if ids[i][0] == ids[j][0] && ids[i][1] == ids[j][1] && ids[i][2] == ids[j][2] {
				t.Fatalf("IDs %x and %x share 3 bytes", ids[i][:4], ids[j][:4])
			}
		}
		for _, b := range ids[i] {
			for ; b != 0; b &= b - 1 {
				ones++
			}
		}
	}
	bitsN := len(ids) * 256
	// Binomial(bitsN, 1/2): 6 standard deviations.
	if dev := float64(ones) - float64(bitsN)/2; dev*dev > 36*float64(bitsN)/4 {
		t.Fatalf("%d of %d ID bits set", ones, bitsN)
	}
	// Nor do the shards' contents: the head replicas differ from each other.
	h := s1.Segments[len(s1.Segments)-1]
	if bytes.Equal(h.Shards[0].Data, h.Shards[1].Data) {
		t.Fatal("head replicas are identical")
	}
}

func TestParams(t *testing.T) {
	for _, p := range []Params{TestnetParams, DefaultParams, small} {
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	if DefaultParams.MaxFileSize() < 400<<30 {
		t.Fatalf("DefaultParams hold only %d bytes", DefaultParams.MaxFileSize())
	}
	for _, p := range []Params{
		{K: 0, M: 1, SegmentSize: 4096}, {K: 1, M: 0, SegmentSize: 4096}, {K: 200, M: 57, SegmentSize: 1 << 24},
		{K: 3, M: 2, SegmentSize: 5000}, {K: 3, M: 2, SegmentSize: 2048}, {K: 3, M: 2, SegmentSize: 1 << 25},
		{K: 10, M: 5, SegmentSize: 4096}, // head too small for one manifest segment
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}
