package shard

import (
	"encoding/binary"
	"fmt"
)

// ManifestVersion is the manifest and head layout version (SPEC.md §5, §6).
const ManifestVersion = 1

// Manifest lists a file's true size and the hash of every shard of every
// data segment (SPEC.md §5). It is stored encrypted, as shards.
type Manifest struct {
	Params   Params
	FileSize int64
	// Hashes holds Segments()*N shard hashes, segment-major: shard i of
	// segment s is Hashes[s*N+i].
	Hashes [][32]byte
}

// Segments is the number of data segments.
func (m *Manifest) Segments() int64 { return m.Params.Segments(m.FileSize) }

// SegmentHashes returns the N shard hashes of data segment s.
func (m *Manifest) SegmentHashes(s int64) [][32]byte {
	n := int64(m.Params.N())
	return m.Hashes[s*n : (s+1)*n]
}

// Marshal encodes m (SPEC.md §5.1).
func (m *Manifest) Marshal() []byte {
	b := make([]byte, manifestHeaderSize, manifestHeaderSize+len(m.Hashes)*HashSize)
	putParams(b, m.Params)
	binary.BigEndian.PutUint64(b[4:], uint64(m.FileSize))
	binary.BigEndian.PutUint64(b[12:], uint64(m.Segments()))
	for i := range m.Hashes {
		b = append(b, m.Hashes[i][:]...)
	}
	return b
}

// ParseManifest decodes a manifest, checking every rule of SPEC.md §5.1, so
// that Marshal(ParseManifest(b)) == b. Its errors wrap ErrTampered: an
// authenticated manifest that does not parse was made wrong.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) < manifestHeaderSize {
		return nil, fmt.Errorf("%w: manifest: %d bytes, shorter than its %d-byte header", ErrTampered, len(b), manifestHeaderSize)
	}
	p, err := getParams(b)
	if err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrTampered, err)
	}
	size := binary.BigEndian.Uint64(b[4:])
	segs := binary.BigEndian.Uint64(b[12:])
	if size > uint64(p.MaxFileSize()) {
		return nil, fmt.Errorf("%w: manifest: file size %d over the %d these params allow", ErrTampered, size, p.MaxFileSize())
	}
	m := &Manifest{Params: p, FileSize: int64(size)}
	if segs != uint64(m.Segments()) {
		return nil, fmt.Errorf("%w: manifest: %d segments listed, a %d-byte file has %d", ErrTampered, segs, size, m.Segments())
	}
	want := p.manifestSize(m.FileSize)
	if int64(len(b)) != want {
		return nil, fmt.Errorf("%w: manifest: %d bytes, want %d", ErrTampered, len(b), want)
	}
	m.Hashes = make([][32]byte, (len(b)-manifestHeaderSize)/HashSize)
	for i := range m.Hashes {
		copy(m.Hashes[i][:], b[manifestHeaderSize+i*HashSize:])
	}
	return m, nil
}

// putParams writes version (1) || k (1) || m (1) || log2 segment size (1).
func putParams(b []byte, p Params) {
	b[0], b[1], b[2], b[3] = ManifestVersion, byte(p.K), byte(p.M), p.sizeCode()
}

func getParams(b []byte) (Params, error) {
	if b[0] != ManifestVersion {
		return Params{}, fmt.Errorf("version %d, want %d", b[0], ManifestVersion)
	}
	p := paramsFromCode(b[1], b[2], b[3])
	if err := p.Validate(); err != nil {
		return Params{}, err
	}
	return p, nil
}

// head is the root-committed object (SPEC.md §6): the manifest's size and
// the hash of every shard of every manifest segment. It fills exactly one
// shard once sealed, and is stored in HeadReplicas copies.
type head struct {
	p            Params
	manifestSize int64
	hashes       [][32]byte // manifest segments × N
}

func (h *head) manifestSegments() int64 {
	return (h.manifestSize + int64(h.p.SegmentSize) - 1) / int64(h.p.SegmentSize)
}

// marshal encodes h, zero-padded to ShardSize-16 bytes (SPEC.md §6.1).
func (h *head) marshal() []byte {
	b := make([]byte, h.p.ShardSize()-TagSize)
	putParams(b, h.p)
	binary.BigEndian.PutUint64(b[4:], uint64(h.manifestSize))
	binary.BigEndian.PutUint64(b[12:], uint64(h.manifestSegments()))
	for i := range h.hashes {
		copy(b[headHeaderSize+i*HashSize:], h.hashes[i][:])
	}
	return b
}

func parseHead(b []byte, want Params) (*head, error) {
	if len(b) != want.ShardSize()-TagSize {
		return nil, fmt.Errorf("head: %d bytes, want %d", len(b), want.ShardSize()-TagSize)
	}
	p, err := getParams(b)
	if err != nil {
		return nil, fmt.Errorf("head: %v", err)
	}
	if p != want {
		return nil, fmt.Errorf("head: params %+v differ from the link's %+v", p, want)
	}
	h := &head{p: p, manifestSize: int64(binary.BigEndian.Uint64(b[4:]))}
	segs := binary.BigEndian.Uint64(b[12:])
	if h.manifestSize < manifestHeaderSize || segs > uint64(p.maxManifestSegments()) || h.manifestSize > int64(segs)*int64(p.SegmentSize) ||
		segs != uint64(h.manifestSegments()) {
		return nil, fmt.Errorf("head: manifest size %d in %d segments is impossible", h.manifestSize, segs)
	}
	end := headHeaderSize + int(segs)*p.N()*HashSize
	for _, c := range b[end:] {
		if c != 0 {
			return nil, fmt.Errorf("head: nonzero padding")
		}
	}
	h.hashes = make([][32]byte, int(segs)*p.N())
	for i := range h.hashes {
		copy(h.hashes[i][:], b[headHeaderSize+i*HashSize:])
	}
	return h, nil
}
