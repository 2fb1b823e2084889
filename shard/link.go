package shard

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Link layout (SPEC.md §3).
const (
	// LinkVersion is the first byte of every link. Append-only: a new layout
	// gets a new version, and old versions keep parsing.
	LinkVersion = 1
	// LinkPrefix begins every link.
	LinkPrefix = "veil:"

	linkChecksumSize = 4
	linkRawSize      = 4 + 32 + 32 + linkChecksumSize // 72 bytes
	// LinkLen is the length of a version-1 link in characters.
	LinkLen = len(LinkPrefix) + (linkRawSize*8+4)/5 // 5 + 116 = 121

	labelLinkFingerprint = "veil shard v1 link fingerprint"
)

// linkEncoding is RFC 4648 base32 in lowercase, without padding.
var linkEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Link is everything a fetcher needs: the code's parameters, the file key
// and the root hash of the head (SPEC.md §3, §6). It names no relay: the
// fetcher finds the shards from the consensus by Place. The file key makes a
// link a secret: never log String(); use Redacted().
type Link struct {
	Params  Params
	FileKey [32]byte
	Root    [32]byte // SHA-256 of the head's plaintext (SPEC.md §6.2)
}

// marshal is version (1) || k (1) || m (1) || log2 segment size (1) ||
// file key (32) || root (32) || checksum (4) (SPEC.md §3.1).
func (l *Link) marshal() []byte {
	b := make([]byte, linkRawSize)
	b[0], b[1], b[2], b[3] = LinkVersion, byte(l.Params.K), byte(l.Params.M), l.Params.sizeCode()
	copy(b[4:], l.FileKey[:])
	copy(b[36:], l.Root[:])
	sum := sha256.Sum256(b[:linkRawSize-linkChecksumSize])
	copy(b[linkRawSize-linkChecksumSize:], sum[:linkChecksumSize])
	return b
}

// String is the link as the user shares it: "veil:" and 116 characters of
// lowercase base32. It holds the file key.
func (l *Link) String() string { return LinkPrefix + linkEncoding.EncodeToString(l.marshal()) }

// Redacted is a stand-in for logs: a fingerprint that tells links apart and
// reveals nothing of the key or root.
func (l *Link) Redacted() string {
	h := sha256.New()
	h.Write([]byte(labelLinkFingerprint))
	h.Write(l.marshal())
	return LinkPrefix + "<redacted " + hex.EncodeToString(h.Sum(nil)[:4]) + ">"
}

// LogValue makes log/slog print the redacted form, so a link passed to a
// logger by mistake does not leak its key.
func (l *Link) LogValue() slog.Value { return slog.StringValue(l.Redacted()) }

// PlacementKey is the key Place wants for this share's shards.
func (l *Link) PlacementKey() [32]byte { return deriveKeys(&l.FileKey).placement }

// ParseLink parses a link exactly as String writes it (no surrounding
// spaces, lowercase), so String(ParseLink(s)) == s. Every error wraps
// ErrBadLink and says what to do.
func ParseLink(s string) (*Link, error) {
	body, ok := strings.CutPrefix(s, LinkPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: it does not begin with %q", ErrBadLink, LinkPrefix)
	}
	if len(body) > 2*LinkLen { // bound the work before decoding (G9)
		return nil, fmt.Errorf("%w: %d characters, far more than a link's %d", ErrBadLink, len(s), LinkLen)
	}
	b, err := linkEncoding.DecodeString(body)
	if err != nil {
		var ce base32.CorruptInputError
		if errors.As(err, &ce) && int(ce) < len(body) {
			return nil, fmt.Errorf("%w: character %d (%q) is not in the link alphabet a-z, 2-7: the link is damaged or mistyped",
				ErrBadLink, len(LinkPrefix)+int(ce)+1, body[ce])
		}
		return nil, fmt.Errorf("%w: %d characters cannot be a link: the link is truncated or damaged", ErrBadLink, len(s))
	}
	if linkEncoding.EncodeToString(b) != body {
		// Trailing bits that decoding ignores: only one spelling is valid.
		return nil, fmt.Errorf("%w: checksum mismatch: the link is damaged or mistyped", ErrBadLink)
	}
	if len(b) <= linkChecksumSize {
		return nil, fmt.Errorf("%w: %d characters, a link has %d: the link is truncated", ErrBadLink, len(s), LinkLen)
	}
	sum := sha256.Sum256(b[:len(b)-linkChecksumSize])
	if string(sum[:linkChecksumSize]) != string(b[len(b)-linkChecksumSize:]) {
		if len(s) != LinkLen {
			return nil, fmt.Errorf("%w: %d characters, a link has %d: the link is truncated or damaged", ErrBadLink, len(s), LinkLen)
		}
		return nil, fmt.Errorf("%w: checksum mismatch: the link is damaged or mistyped", ErrBadLink)
	}
	if b[0] != LinkVersion {
		return nil, fmt.Errorf("%w: link version %d, this veil reads version %d: upgrade veil", ErrBadLink, b[0], LinkVersion)
	}
	if len(b) != linkRawSize {
		return nil, fmt.Errorf("%w: %d characters, a version %d link has %d", ErrBadLink, len(s), LinkVersion, LinkLen)
	}
	l := &Link{Params: paramsFromCode(b[1], b[2], b[3])}
	if err := l.Params.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadLink, err)
	}
	copy(l.FileKey[:], b[4:36])
	copy(l.Root[:], b[36:68])
	return l, nil
}

// ShardIDs returns the IDs of the shards of one segment (the head's
// replicas for KindHead), computed from the link alone, as repair and
// audits need them.
func (l *Link) ShardIDs(kind Kind, index uint64) [][32]byte {
	n := l.Params.N()
	if kind == KindHead {
		n = l.Params.HeadReplicas()
	}
	k := deriveKeys(&l.FileKey)
	return newIDHasher(&k.shardID).ids(kind, index, n)
}

// SegmentIDs names the shards of one segment, or the head's replicas.
type SegmentIDs struct {
	Kind  Kind
	Index uint64
	IDs   [][32]byte
}

// AllShardIDs lists every segment of the share of a size-byte file with
// its shard IDs: the data segments, the manifest segments, then the head.
// Audits need it: the rule that no relay holds two shards of a segment
// (SPEC.md §8) covers all three kinds. The size is not in the link; it is
// the caller's to know.
func (l *Link) AllShardIDs(size int64) []SegmentIDs {
	p := l.Params
	var out []SegmentIDs
	for i := range uint64(p.Segments(size)) {
		out = append(out, SegmentIDs{KindData, i, l.ShardIDs(KindData, i)})
	}
	for i := range uint64(p.ManifestSegments(size)) {
		out = append(out, SegmentIDs{KindManifest, i, l.ShardIDs(KindManifest, i)})
	}
	return append(out, SegmentIDs{KindHead, 0, l.ShardIDs(KindHead, 0)})
}
