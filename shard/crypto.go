package shard

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// Domain-separation labels: HKDF-SHA256 info strings, one per subkey
// (SPEC.md §4.1). A new layout gets new labels.
const (
	labelSegmentKey   = "veil shard v1 segment key"
	labelManifestKey  = "veil shard v1 manifest key"
	labelHeadKey      = "veil shard v1 head key"
	labelShardIDKey   = "veil shard v1 shard id key"
	labelPlacementKey = "veil shard v1 placement key"
)

// Shard-ID domains (SPEC.md §4.3), 4 bytes each so the HMAC input has one
// parse. The domain of a stored shard is hidden by the HMAC.
const (
	domainData     = "data"
	domainManifest = "mfst"
	domainHead     = "head"
)

// Nonce flags (SPEC.md §4.2). Append-only.
const flagLast = 0x01

// Kind says which object a segment belongs to. Not on the wire; the
// numbering is append-only all the same.
type Kind uint8

const (
	KindHead     Kind = 1 // the replicated head (SPEC.md §6)
	KindManifest Kind = 2 // a manifest segment (SPEC.md §5)
	KindData     Kind = 3 // a data segment (SPEC.md §4)
)

func (k Kind) String() string {
	switch k {
	case KindHead:
		return "head"
	case KindManifest:
		return "manifest"
	case KindData:
		return "data"
	}
	return "unknown"
}

func (k Kind) domain() string {
	switch k {
	case KindHead:
		return domainHead
	case KindManifest:
		return domainManifest
	}
	return domainData
}

// shareKeys are the subkeys of one file key (SPEC.md §4.1).
type shareKeys struct {
	segment, manifest, head cipher.AEAD
	shardID, placement      [32]byte
}

func deriveKeys(fileKey *[32]byte) *shareKeys {
	k := &shareKeys{
		segment:  newGCM(derive(fileKey, labelSegmentKey)),
		manifest: newGCM(derive(fileKey, labelManifestKey)),
		head:     newGCM(derive(fileKey, labelHeadKey)),
	}
	copy(k.shardID[:], derive(fileKey, labelShardIDKey))
	copy(k.placement[:], derive(fileKey, labelPlacementKey))
	return k
}

func derive(fileKey *[32]byte, label string) []byte {
	b, err := hkdf.Key(sha256.New, fileKey[:], nil, label, 32)
	if err != nil {
		panic("shard: internal error: hkdf: " + err.Error())
	}
	return b
}

func newGCM(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic("shard: internal error: aes: " + err.Error())
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic("shard: internal error: gcm: " + err.Error())
	}
	return g
}

func (k *shareKeys) aead(kind Kind) cipher.AEAD {
	switch kind {
	case KindHead:
		return k.head
	case KindManifest:
		return k.manifest
	}
	return k.segment
}

// segmentNonce is index (8) || flags (1) || 0^3 (SPEC.md §4.2).
func segmentNonce(index uint64, last bool) []byte {
	n := make([]byte, NonceSize)
	binary.BigEndian.PutUint64(n, index)
	if last {
		n[8] = flagLast
	}
	return n
}

// idHasher computes shard IDs (SPEC.md §4.3). Not safe for concurrent use.
type idHasher struct {
	mac hash.Hash
	buf [13]byte
}

func newIDHasher(key *[32]byte) *idHasher { return &idHasher{mac: hmac.New(sha256.New, key[:])} }

// id is HMAC-SHA256(shardIDKey, domain (4) || index (8) || shard (1)).
func (h *idHasher) id(kind Kind, index uint64, shard int) (id [32]byte) {
	h.mac.Reset()
	h.mac.Write([]byte(kind.domain()))
	binary.BigEndian.PutUint64(h.buf[:8], index)
	h.buf[8] = byte(shard)
	h.mac.Write(h.buf[:9])
	h.mac.Sum(id[:0])
	return id
}

func (h *idHasher) ids(kind Kind, index uint64, n int) [][32]byte {
	ids := make([][32]byte, n)
	for i := range ids {
		ids[i] = h.id(kind, index, i)
	}
	return ids
}
