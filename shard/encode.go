package shard

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// Encoder turns a file into a share one segment at a time: first every data
// segment in order, then the manifest's segments, then the head; then Next
// returns io.EOF and Link is ready. It reads the file exactly once and holds
// one segment's shards (N*ShardSize bytes, 1.5 MiB for DefaultParams) plus
// the manifest (32*N bytes per data segment, 48 KB for 100 MB) — never the
// file. Each Segment's shards are freshly allocated and belong to the caller.
type Encoder struct {
	r       io.Reader
	size    int64
	c       *codec
	fileKey [32]byte

	next     int64  // next data segment
	segs     int64  // data segments
	meta     Meta   // the manifest's content type and name
	manifest []byte // SPEC.md §5.1, hashes appended as segments are sealed
	tail     []*Segment
	link     *Link
	err      error // sticky
}

// NewEncoder starts a share of the size bytes that r yields. The file key is
// the only randomness: 32 bytes read from rand (crypto/rand.Reader in real
// use). It is never derived from the content (DESIGN.md G7).
func NewEncoder(r io.Reader, size int64, p Params, rand io.Reader) (*Encoder, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if size < 0 || size > p.MaxFileSize() {
		return nil, fmt.Errorf("shard: file size %d: these params hold 0 to %d bytes", size, p.MaxFileSize())
	}
	e := &Encoder{r: r, size: size, segs: p.Segments(size)}
	if _, err := io.ReadFull(rand, e.fileKey[:]); err != nil {
		return nil, fmt.Errorf("shard: file key: %w", err)
	}
	c, err := newCodec(p, &e.fileKey)
	if err != nil {
		return nil, err
	}
	e.c = c
	// The header is written by finish, once the meta is final; the hashes
	// follow it as segments are sealed.
	e.manifest = make([]byte, manifestHeaderSize, p.manifestSize(size))
	return e, nil
}

// SetMeta sets what the manifest says the bytes are and their name
// (SPEC.md §5.1). Without it a share is an unnamed file. It must come
// before Next returns the manifest's first segment, which seals it.
func (e *Encoder) SetMeta(m Meta) error {
	if err := CheckName(m.Name); err != nil {
		return err
	}
	if m.Content > maxContent {
		return fmt.Errorf("shard: content type %d unknown", byte(m.Content))
	}
	if e.link != nil {
		return errors.New("shard: SetMeta after the manifest was sealed")
	}
	e.meta = m
	return nil
}

// PlacementKey is the key Place wants for this share's shards.
func (e *Encoder) PlacementKey() [32]byte { return e.c.keys.placement }

// Next returns the next segment to store, or io.EOF once the head has been
// returned. Errors are sticky.
func (e *Encoder) Next() (*Segment, error) {
	if e.err != nil {
		return nil, e.err
	}
	seg, err := e.next1()
	if err != nil {
		e.err = err
	}
	return seg, err
}

func (e *Encoder) next1() (*Segment, error) {
	if e.next < e.segs {
		return e.dataSegment()
	}
	if e.link == nil {
		e.finish()
	}
	if len(e.tail) == 0 {
		return nil, io.EOF
	}
	seg := e.tail[0]
	e.tail = e.tail[1:]
	return seg, nil
}

// dataSegment reads, pads, seals and codes data segment e.next (SPEC.md §4).
func (e *Encoder) dataSegment() (*Segment, error) {
	S := int64(e.c.p.SegmentSize)
	i := e.next
	want := min(S, e.size-i*S)
	buf := e.c.newSegmentBuf()
	if n, err := io.ReadFull(e.r, buf[:want]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: ended after %d of %d bytes", ErrShortInput, i*S+int64(n), e.size)
		}
		return nil, fmt.Errorf("shard: read segment %d: %w", i, err)
	}
	seg := e.c.seal(KindData, uint64(i), i == e.segs-1, buf)
	for _, sh := range seg.Shards {
		e.manifest = append(e.manifest, sh.Hash[:]...)
	}
	e.next++
	return seg, nil
}

// finish seals the manifest into segments and the head into its replicas
// (SPEC.md §5.2, §6) and makes the link.
func (e *Encoder) finish() {
	p, S := e.c.p, e.c.p.SegmentSize
	hdr := (&Manifest{Params: p, FileSize: e.size, Meta: e.meta}).Marshal()
	copy(e.manifest, hdr)
	h := &head{p: p, manifestSize: int64(len(e.manifest))}
	ms := h.manifestSegments()
	for j := int64(0); j < ms; j++ {
		buf := e.c.newSegmentBuf()
		copy(buf[:S], e.manifest[j*int64(S):])
		seg := e.c.seal(KindManifest, uint64(j), j == ms-1, buf)
		for _, sh := range seg.Shards {
			h.hashes = append(h.hashes, sh.Hash)
		}
		e.tail = append(e.tail, seg)
	}
	e.manifest = nil
	pt := h.marshal()
	root := sha256.Sum256(pt)
	headSeg := &Segment{Kind: KindHead, Shards: make([]Shard, p.HeadReplicas())}
	for r := range headSeg.Shards {
		// Each replica sealed under its own nonce, so replicas differ and
		// relays cannot match them up (SPEC.md §6.2).
		d := e.c.keys.head.Seal(make([]byte, 0, e.c.ss), segmentNonce(uint64(r), true), pt, nil)
		headSeg.Shards[r] = Shard{ID: e.c.ids.id(KindHead, 0, r), Hash: sha256.Sum256(d), Data: d}
	}
	e.tail = append(e.tail, headSeg)
	e.link = &Link{Params: p, FileKey: e.fileKey, Root: root}
}

// Link returns the share's link once Next has returned io.EOF.
func (e *Encoder) Link() (*Link, error) {
	if e.link == nil || len(e.tail) != 0 || e.err != io.EOF {
		return nil, errors.New("shard: link asked for before the encoder finished")
	}
	return e.link, nil
}

// Share is a whole share in memory, for small files and tests.
type Share struct {
	Link     *Link
	Segments []*Segment // data segments, manifest segments, then the head
}

// Encode reads all of a file into a Share. For large files use Encoder, which
// holds one segment at a time.
func Encode(r io.Reader, size int64, p Params, rand io.Reader) (*Share, error) {
	e, err := NewEncoder(r, size, p, rand)
	if err != nil {
		return nil, err
	}
	s := &Share{}
	for {
		seg, err := e.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		s.Segments = append(s.Segments, seg)
	}
	s.Link, err = e.Link()
	return s, err
}
