package keys

// Key files (SPEC.md §3). Each is
//
//	magic (8) | body | checksum (32)
//
// where checksum = SHA-256(magic || body). The checksum catches truncation
// and bit rot before a damaged key is used; it is not a MAC, as anyone who
// can write the file can replace the key anyway.
//
// identity.key, identityFileLen = 72 bytes:
//
//	"VEILIDK1" | Ed25519 seed (32) | checksum (32)
//
// onion.key, 8 + 1 + n*onionEntryLen + 32 bytes for n = 1 or 2:
//
//	"VEILONK1" | count n (1) | n × (X25519 private (32) | OnionCert (145)) | checksum (32)
//
// The first entry is the current key, the second (if any) the previous one
// still inside its grace period. All certs must name the same identity, and
// each private key must match its cert's onion key.
//
// A new format gets a new magic ("…K2"); magics are append-only.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
)

const (
	identityMagic = "VEILIDK1"
	onionMagic    = "VEILONK1"

	magicLen        = 8
	checksumLen     = sha256.Size
	identityFileLen = magicLen + ed25519.SeedSize + checksumLen
	onionEntryLen   = 32 + OnionCertLen
	maxOnionKeys    = 2 // current and previous: rotation never needs more

	// maxKeyFileLen bounds how much of a key file is read: the largest
	// onion file.
	maxKeyFileLen = magicLen + 1 + maxOnionKeys*onionEntryLen + checksumLen
)

// sealKeyFile appends the checksum to magic || body.
func sealKeyFile(magic string, body []byte) []byte {
	b := make([]byte, 0, magicLen+len(body)+checksumLen)
	b = append(b, magic...)
	b = append(b, body...)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// openKeyFile checks magic and checksum and returns the body. Errors are
// unprefixed: the Store wraps them in an *Error naming the file.
func openKeyFile(magic string, b []byte) ([]byte, error) {
	if len(b) < magicLen+checksumLen {
		return nil, fmt.Errorf("truncated: %d bytes", len(b))
	}
	if !bytes.Equal(b[:magicLen], []byte(magic)) {
		return nil, fmt.Errorf("not a veil key file of this kind (magic %q, want %q)", b[:magicLen], magic)
	}
	n := len(b) - checksumLen
	sum := sha256.Sum256(b[:n])
	if subtle.ConstantTimeCompare(sum[:], b[n:]) != 1 {
		return nil, errors.New("checksum mismatch")
	}
	return b[magicLen:n], nil
}

func marshalIdentityFile(id *Identity) []byte {
	seed := id.seed()
	defer clear(seed)
	return sealKeyFile(identityMagic, seed)
}

func parseIdentityFile(b []byte) (*Identity, error) {
	if len(b) < identityFileLen && len(b) >= magicLen && string(b[:magicLen]) == identityMagic {
		return nil, fmt.Errorf("truncated: %d bytes, want %d", len(b), identityFileLen)
	}
	body, err := openKeyFile(identityMagic, b)
	if err != nil {
		return nil, err
	}
	if len(body) != ed25519.SeedSize {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), identityFileLen)
	}
	return identityFromSeed(body), nil
}

func marshalOnionFile(keys []*OnionKey) []byte {
	body := make([]byte, 0, 1+len(keys)*onionEntryLen)
	body = append(body, byte(len(keys)))
	for _, k := range keys {
		priv := k.Private()
		body = append(body, priv[:]...)
		clear(priv[:])
		body = append(body, k.cert.Marshal()...)
	}
	defer clear(body)
	return sealKeyFile(onionMagic, body)
}

// parseOnionFile returns the current key first, then the previous one if
// the file holds it.
func parseOnionFile(b []byte) ([]*OnionKey, error) {
	if len(b) > magicLen && string(b[:magicLen]) == onionMagic {
		if n := int(b[magicLen]); n >= 1 && n <= maxOnionKeys && len(b) < onionFileLen(n) {
			return nil, fmt.Errorf("truncated: %d bytes, want %d", len(b), onionFileLen(n))
		}
	}
	body, err := openKeyFile(onionMagic, b)
	if err != nil {
		return nil, err
	}
	if len(body) < 1 {
		return nil, errors.New("truncated: no key count")
	}
	n := int(body[0])
	if n < 1 || n > maxOnionKeys {
		return nil, fmt.Errorf("holds %d keys, want 1 to %d", n, maxOnionKeys)
	}
	if len(body) != 1+n*onionEntryLen {
		return nil, fmt.Errorf("%d bytes of keys, want %d for %d keys", len(body)-1, n*onionEntryLen, n)
	}
	keys := make([]*OnionKey, 0, n)
	for i := range n {
		e := body[1+i*onionEntryLen : 1+(i+1)*onionEntryLen]
		k, err := parseOnionEntry(e)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		if i > 0 && !bytes.Equal(k.cert.IdentityKey, keys[0].cert.IdentityKey) {
			return nil, fmt.Errorf("key %d: certified by another identity than key 1", i+1)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func onionFileLen(n int) int { return magicLen + 1 + n*onionEntryLen + checksumLen }

func parseOnionEntry(e []byte) (*OnionKey, error) {
	cert, err := parseOnionCert(e[32:])
	if err != nil {
		return nil, fmt.Errorf("cert: %w", err)
	}
	k := &OnionKey{cert: cert}
	copy(k.priv[:], e[:32])
	pub, err := x25519Public(k.priv)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	if pub != cert.OnionKey {
		return nil, errors.New("private key does not match its cert")
	}
	k.pub = pub
	if err := k.initECDH(); err != nil {
		return nil, err
	}
	return k, nil
}
