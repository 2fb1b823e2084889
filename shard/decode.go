package shard

import (
	"errors"
	"fmt"
	"io"
)

// Want is what a Decoder needs next: the shards with these IDs, of which
// Need must verify. Fetch them (Place says where) and pass them to Add in
// the same order, nil for any not fetched.
type Want struct {
	Kind  Kind
	Index uint64
	IDs   [][32]byte
	Need  int // K, or 1 for the head
}

// Decoder rebuilds a file from its link and its shards, verifying
// everything (SPEC.md §9): first the head (any one replica), then the
// manifest segments in order, then the data segments in order, writing
// plaintext to w as each is verified. It holds the manifest (32*N bytes per
// data segment) and one segment. Not safe for concurrent use.
type Decoder struct {
	link *Link
	c    *codec
	w    io.Writer

	kind     Kind
	index    uint64
	head     *head
	mbuf     []byte // manifest plaintext as its segments arrive
	manifest *Manifest
	err      error // sticky: ErrTampered from verified shards, or a write error
	refused  int   // shards offered to Add that failed their hash or did not open
	// refusedHere marks the positions of the current segment counted in
	// refused, so that a shard offered again after fetching more is
	// counted once.
	refusedHere []bool
}

// refuse counts the shards at positions bad of the current segment.
func (d *Decoder) refuse(bad []int) {
	for _, i := range bad {
		if d.refusedHere == nil {
			d.refusedHere = make([]bool, max(d.c.p.N(), d.c.p.HeadReplicas()))
		}
		if !d.refusedHere[i] {
			d.refusedHere[i] = true
			d.refused++
		}
	}
}

// advance moves to the next segment to decode.
func (d *Decoder) advance(kind Kind, index uint64) {
	d.kind, d.index, d.refusedHere = kind, index, nil
}

// NewDecoder starts decoding the share l points at into w.
func NewDecoder(l *Link, w io.Writer) (*Decoder, error) {
	c, err := newCodec(l.Params, &l.FileKey)
	if err != nil {
		return nil, err
	}
	return &Decoder{link: l, c: c, w: w, kind: KindHead}, nil
}

// Manifest is the verified manifest, nil until its last segment was added.
func (d *Decoder) Manifest() *Manifest { return d.manifest }

// Refused is how many shards offered to Add so far were dropped for a wrong
// length or hash (head replicas: that did not open or match the root),
// each counted once however often it was offered.
// Each is a relay, or a disk, that served damaged data; a fetch reports
// the count.
func (d *Decoder) Refused() int { return d.refused }

// Done reports whether every data segment was verified and written. A fetch
// that stops before Done has not got the whole file (DESIGN.md G10).
func (d *Decoder) Done() bool { return d.kind == 0 }

// Want says what to fetch next; io.EOF once Done.
func (d *Decoder) Want() (Want, error) {
	if d.err != nil {
		return Want{}, d.err
	}
	p := d.c.p
	switch d.kind {
	case KindHead:
		return Want{Kind: KindHead, IDs: d.c.ids.ids(KindHead, 0, p.HeadReplicas()), Need: 1}, nil
	case KindManifest, KindData:
		return Want{Kind: d.kind, Index: d.index, IDs: d.c.ids.ids(d.kind, d.index, p.N()), Need: p.K}, nil
	}
	return Want{}, io.EOF
}

// Add offers the shards fetched for the current Want, in its order (nil =
// not fetched). Shards of the wrong size or hash are dropped; if too few
// remain it returns a *ShardsError (errors.Is ErrNotEnoughShards) and the
// caller may fetch more and Add again. Authentication failures of verified
// shards and write errors are final.
func (d *Decoder) Add(shards [][]byte) error {
	if d.err != nil {
		return d.err
	}
	var err error
	switch d.kind {
	case KindHead:
		err = d.addHead(shards)
	case KindManifest:
		err = d.addManifest(shards)
	case KindData:
		err = d.addData(shards)
	default:
		return errors.New("shard: Add after the decoder finished")
	}
	if err != nil && !errors.Is(err, ErrNotEnoughShards) {
		d.err = err
	}
	return err
}

// addHead takes the first replica that opens and matches the root (§6.2).
func (d *Decoder) addHead(replicas [][]byte) error {
	p := d.c.p
	if len(replicas) != p.HeadReplicas() {
		return fmt.Errorf("shard: head: %d replica slots offered, want %d", len(replicas), p.HeadReplicas())
	}
	bad := 0
	for r, data := range replicas {
		if data == nil {
			continue
		}
		pt, ok := d.openHeadReplica(r, data)
		if !ok {
			// Another replica may still be right.
			bad++
			d.refuse([]int{r})
			continue
		}
		h, err := parseHead(pt, p)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrTampered, err)
		}
		d.head = h
		d.advance(KindManifest, 0)
		d.mbuf = make([]byte, 0, h.manifestSegments()*int64(p.SegmentSize))
		return nil
	}
	return &ShardsError{Kind: KindHead, Bad: bad, Need: 1}
}

func (d *Decoder) addManifest(shards [][]byte) error {
	n, segs := int64(d.c.p.N()), d.head.manifestSegments()
	j := int64(d.index)
	pt, bad, err := d.c.open(KindManifest, d.index, j == segs-1, shards, d.head.hashes[j*n:(j+1)*n])
	d.refuse(bad)
	if err != nil {
		return err
	}
	d.mbuf = append(d.mbuf, pt...)
	if j+1 < segs {
		d.advance(KindManifest, d.index+1)
		return nil
	}
	for _, b := range d.mbuf[d.head.manifestSize:] {
		if b != 0 {
			return fmt.Errorf("%w: manifest: nonzero padding", ErrTampered)
		}
	}
	m, err := ParseManifest(d.mbuf[:d.head.manifestSize])
	if err != nil {
		return err
	}
	if m.Params != d.c.p {
		return fmt.Errorf("%w: manifest params %+v differ from the link's %+v", ErrTampered, m.Params, d.c.p)
	}
	d.manifest, d.mbuf, d.head = m, nil, nil
	d.advance(KindData, 0)
	return nil
}

func (d *Decoder) addData(shards [][]byte) error {
	m, i := d.manifest, int64(d.index)
	last := i == m.Segments()-1
	pt, bad, err := d.c.open(KindData, d.index, last, shards, m.SegmentHashes(i))
	d.refuse(bad)
	if err != nil {
		return err
	}
	if last {
		// The true length is only in the manifest; the rest is padding,
		// authenticated with the segment and required to be zero (§4.4).
		n := m.FileSize - i*int64(d.c.p.SegmentSize)
		for _, b := range pt[n:] {
			if b != 0 {
				return fmt.Errorf("%w: data segment %d: nonzero padding", ErrTampered, i)
			}
		}
		pt = pt[:n]
	}
	if _, err := d.w.Write(pt); err != nil {
		return fmt.Errorf("shard: write segment %d: %w", i, err)
	}
	if last {
		d.advance(0, 0)
	} else {
		d.advance(KindData, d.index+1)
	}
	return nil
}

// Decode runs a Decoder to the end, getting each shard by ID from get (nil
// when it has none). It is the whole fetch loop for callers that can look
// shards up one by one, such as tests and a local store.
func Decode(l *Link, get func(id [32]byte) []byte, w io.Writer) error {
	d, err := NewDecoder(l, w)
	if err != nil {
		return err
	}
	for {
		want, err := d.Want()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		shards := make([][]byte, len(want.IDs))
		for i, id := range want.IDs {
			shards[i] = get(id)
		}
		if err := d.Add(shards); err != nil {
			return err
		}
	}
}
