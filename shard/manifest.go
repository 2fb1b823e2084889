package shard

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Versions of the objects the link points at (SPEC.md §1). Append-only: a
// number once given is never reused, and old versions keep parsing.
const (
	// ManifestVersion is the layout Marshal writes (SPEC.md §5.1): version
	// 2 added the content type and the name. Version-1 manifests, with
	// neither, still parse, so links shared before it still fetch.
	ManifestVersion = 2
	manifestV1      = 1
	// headVersion is the head's layout (SPEC.md §6.1), unchanged since 1.
	headVersion = 1
)

// Content says what a share's bytes are (SPEC.md §5.1). Append-only.
type Content byte

const (
	// ContentFile is one file, its bytes as they are.
	ContentFile Content = 0
	// ContentTree is a directory packed as a tar archive (SPEC.md §5.3).
	ContentTree Content = 1
	maxContent          = ContentTree
)

func (c Content) String() string {
	switch c {
	case ContentFile:
		return "file"
	case ContentTree:
		return "directory"
	}
	return fmt.Sprintf("content(%d)", byte(c))
}

// MaxNameLen is the longest name a manifest carries, in bytes: NAME_MAX
// on Linux and most other systems, so a valid name is one path element
// everywhere (SPEC.md §5.1).
const MaxNameLen = 255

// Meta is what the manifest says of the shared bytes besides their hashes:
// what they are and the name the sharer gave them ("" for none).
type Meta struct {
	Content Content
	Name    string
}

// CheckName reports whether name may travel in a manifest (SPEC.md §5.1):
// empty, or one path element a fetcher can create in its directory and
// no further: valid UTF-8 of at most MaxNameLen bytes, not "." or "..", no
// '/' or '\\', no control character.
func CheckName(name string) error {
	switch {
	case name == "":
		return nil
	case len(name) > MaxNameLen:
		return fmt.Errorf("shard: name: %d bytes, at most %d", len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("shard: name %q is not UTF-8", name)
	case name == "." || name == "..":
		return fmt.Errorf("shard: name %q is not a file name", name)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("shard: name %q holds a path separator", name)
	case strings.ContainsFunc(name, unicode.IsControl):
		return fmt.Errorf("shard: name %q holds a control character", name)
	}
	return nil
}

// Manifest lists a file's true size and the hash of every shard of every
// data segment, with what the bytes are and their name (SPEC.md §5). It is
// stored encrypted, as shards.
type Manifest struct {
	// Version is the layout, ManifestVersion when zero. Only parsing an
	// old share sets another: version 1 has no Content and no Name.
	Version  byte
	Params   Params
	FileSize int64
	Meta
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

// Manifest layout (SPEC.md §5.1): the version-1 header, then in version 2
// the content type, the name's length and the name's fixed field.
const (
	manifestHeaderSizeV1 = 20
	manifestContentAt    = 20
	manifestNameLenAt    = 21
	manifestNameAt       = 22
	manifestHeaderSize   = manifestNameAt + MaxNameLen // 277
)

// Marshal encodes m (SPEC.md §5.1). The name must pass CheckName and fit
// the version; the Encoder makes sure of both.
func (m *Manifest) Marshal() []byte {
	v, hdr := m.layout()
	b := make([]byte, hdr, hdr+len(m.Hashes)*HashSize)
	putParams(b, v, m.Params)
	binary.BigEndian.PutUint64(b[4:], uint64(m.FileSize))
	binary.BigEndian.PutUint64(b[12:], uint64(m.Segments()))
	if v != manifestV1 {
		b[manifestContentAt] = byte(m.Content)
		b[manifestNameLenAt] = byte(len(m.Name))
		copy(b[manifestNameAt:], m.Name)
	}
	for i := range m.Hashes {
		b = append(b, m.Hashes[i][:]...)
	}
	return b
}

// layout is m's version and header size.
func (m *Manifest) layout() (byte, int) {
	if m.Version == manifestV1 {
		return manifestV1, manifestHeaderSizeV1
	}
	return ManifestVersion, manifestHeaderSize
}

// ParseManifest decodes a manifest, checking every rule of SPEC.md §5.1, so
// that Marshal(ParseManifest(b)) == b. Its errors wrap ErrTampered: an
// authenticated manifest that does not parse was made wrong, by a faulty
// or a hostile sharer (a name that could leave the fetcher's directory).
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) < manifestHeaderSizeV1 {
		return nil, fmt.Errorf("%w: manifest: %d bytes, shorter than its %d-byte header", ErrTampered, len(b), manifestHeaderSizeV1)
	}
	v := b[0]
	hdr := manifestHeaderSize
	switch v {
	case manifestV1:
		hdr = manifestHeaderSizeV1
	case ManifestVersion:
		if len(b) < hdr {
			return nil, fmt.Errorf("%w: manifest: %d bytes, shorter than its %d-byte header", ErrTampered, len(b), hdr)
		}
	default:
		return nil, fmt.Errorf("%w: manifest: version %d, this veil reads %d and %d: upgrade veil", ErrTampered, v, manifestV1, ManifestVersion)
	}
	p, err := getParams(b, v)
	if err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrTampered, err)
	}
	size := binary.BigEndian.Uint64(b[4:])
	segs := binary.BigEndian.Uint64(b[12:])
	if size > uint64(p.maxFileSize(hdr)) {
		return nil, fmt.Errorf("%w: manifest: file size %d over the %d these params allow", ErrTampered, size, p.maxFileSize(hdr))
	}
	m := &Manifest{Version: v, Params: p, FileSize: int64(size)}
	if segs != uint64(m.Segments()) {
		return nil, fmt.Errorf("%w: manifest: %d segments listed, a %d-byte file has %d", ErrTampered, segs, size, m.Segments())
	}
	if v == ManifestVersion {
		if m.Meta, err = parseMeta(b[manifestContentAt:manifestHeaderSize]); err != nil {
			return nil, fmt.Errorf("%w: manifest: %v", ErrTampered, err)
		}
	}
	want := int64(hdr) + m.Segments()*int64(p.N()*HashSize)
	if int64(len(b)) != want {
		return nil, fmt.Errorf("%w: manifest: %d bytes, want %d", ErrTampered, len(b), want)
	}
	m.Hashes = make([][32]byte, (len(b)-hdr)/HashSize)
	for i := range m.Hashes {
		copy(m.Hashes[i][:], b[hdr+i*HashSize:])
	}
	return m, nil
}

// parseMeta reads content (1) || name length (1) || name field (255).
func parseMeta(b []byte) (Meta, error) {
	c, n := Content(b[0]), int(b[1])
	if c > maxContent {
		return Meta{}, fmt.Errorf("content type %d unknown", byte(c))
	}
	field := b[manifestNameAt-manifestContentAt:]
	name := string(field[:n])
	for _, x := range field[n:] {
		if x != 0 {
			return Meta{}, fmt.Errorf("nonzero bytes after the name")
		}
	}
	if err := CheckName(name); err != nil {
		return Meta{}, err
	}
	return Meta{Content: c, Name: name}, nil
}

// putParams writes version (1) || k (1) || m (1) || log2 segment size (1).
func putParams(b []byte, version byte, p Params) {
	b[0], b[1], b[2], b[3] = version, byte(p.K), byte(p.M), p.sizeCode()
}

func getParams(b []byte, version byte) (Params, error) {
	if b[0] != version {
		return Params{}, fmt.Errorf("version %d, want %d", b[0], version)
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
	putParams(b, headVersion, h.p)
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
	p, err := getParams(b, headVersion)
	if err != nil {
		return nil, fmt.Errorf("head: %v", err)
	}
	if p != want {
		return nil, fmt.Errorf("head: params %+v differ from the link's %+v", p, want)
	}
	h := &head{p: p, manifestSize: int64(binary.BigEndian.Uint64(b[4:]))}
	segs := binary.BigEndian.Uint64(b[12:])
	// A version-1 manifest is the shortest a head may point at.
	if h.manifestSize < manifestHeaderSizeV1 || segs > uint64(p.maxManifestSegments()) || h.manifestSize > int64(segs)*int64(p.SegmentSize) ||
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
