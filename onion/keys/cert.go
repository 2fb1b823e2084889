package keys

// An OnionCert binds an onion public key to an identity for a time span.
// Layout (SPEC.md §2), integers big-endian, OnionCertLen = 145 bytes:
//
//	offset size field
//	0      1    version, = onionCertVersion (1)
//	1      32   identity: Ed25519 public key of the signer
//	33     32   onion key: X25519 public key
//	65     8    created: unix seconds, two's complement int64
//	73     8    expires: unix seconds, two's complement int64
//	81     64   signature: Ed25519 by identity over
//	            OnionCertLabel || 0x00 || bytes 0..80
//
// Versions are append-only; a new layout gets a new version and label.

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

const (
	// OnionCertLabel is the signature label of an onion cert.
	OnionCertLabel = "veil onion cert v1"
	// OnionCertLen is the exact size of a marshalled OnionCert.
	OnionCertLen = onionCertSignedLen + ed25519.SignatureSize
	// CertClockSkew is how far ahead of its created time a cert is already
	// accepted, because relays' and clients' clocks disagree a little.
	CertClockSkew = 10 * time.Minute

	onionCertVersion   = 1
	onionCertSignedLen = 1 + 32 + 32 + 8 + 8 // 81: everything but the signature
)

// OnionCert is a parsed or freshly signed onion cert. Times have second
// resolution. Treat it as read-only: it may be shared between goroutines.
type OnionCert struct {
	IdentityKey ed25519.PublicKey
	OnionKey    [32]byte
	Created     time.Time
	Expires     time.Time
	Signature   [ed25519.SignatureSize]byte
}

// newOnionCert signs a cert for onionPub valid from created to expires.
func newOnionCert(id *Identity, onionPub [32]byte, created, expires time.Time) *OnionCert {
	c := &OnionCert{
		IdentityKey: id.Public(),
		OnionKey:    onionPub,
		Created:     time.Unix(created.Unix(), 0).UTC(),
		Expires:     time.Unix(expires.Unix(), 0).UTC(),
	}
	copy(c.Signature[:], id.Sign(OnionCertLabel, c.signedPart()))
	return c
}

func (c *OnionCert) signedPart() []byte {
	b := make([]byte, onionCertSignedLen, OnionCertLen)
	b[0] = onionCertVersion
	copy(b[1:33], c.IdentityKey)
	copy(b[33:65], c.OnionKey[:])
	binary.BigEndian.PutUint64(b[65:73], uint64(c.Created.Unix()))
	binary.BigEndian.PutUint64(b[73:81], uint64(c.Expires.Unix()))
	return b
}

// Marshal returns the OnionCertLen-byte encoding.
func (c *OnionCert) Marshal() []byte {
	return append(c.signedPart(), c.Signature[:]...)
}

// NodeID returns the ID of the node that signed the cert.
func (c *OnionCert) NodeID() NodeID { return NodeIDFromIdentity(c.IdentityKey) }

// ParseOnionCert parses an encoded cert and checks its signature. It does not
// check the time span; call Valid for that.
func ParseOnionCert(b []byte) (*OnionCert, error) {
	c, err := parseOnionCert(b)
	if err != nil {
		return nil, fmt.Errorf("keys: onion cert: %w", err)
	}
	return c, nil
}

// parseOnionCert returns errors without a prefix for callers that add their own.
func parseOnionCert(b []byte) (*OnionCert, error) {
	if len(b) != OnionCertLen {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), OnionCertLen)
	}
	if b[0] != onionCertVersion {
		return nil, fmt.Errorf("unknown version %d", b[0])
	}
	c := &OnionCert{
		IdentityKey: ed25519.PublicKey(append([]byte(nil), b[1:33]...)),
		Created:     time.Unix(int64(binary.BigEndian.Uint64(b[65:73])), 0).UTC(),
		Expires:     time.Unix(int64(binary.BigEndian.Uint64(b[73:81])), 0).UTC(),
	}
	copy(c.OnionKey[:], b[33:65])
	copy(c.Signature[:], b[81:])
	if c.Expires.Before(c.Created) {
		return nil, errors.New("expires before it is created")
	}
	if !Verify(c.IdentityKey, OnionCertLabel, b[:onionCertSignedLen], c.Signature[:]) {
		return nil, errors.New("bad signature")
	}
	return c, nil
}

// Valid checks that the cert is signed by its identity key and that now lies
// in [Created-CertClockSkew, Expires]. The signature is checked again here
// because a cert may have been built field by field rather than parsed.
func (c *OnionCert) Valid(now time.Time) error {
	if len(c.IdentityKey) != ed25519.PublicKeySize ||
		!Verify(c.IdentityKey, OnionCertLabel, c.signedPart(), c.Signature[:]) {
		return errors.New("keys: onion cert: bad signature")
	}
	if now.Before(c.Created.Add(-CertClockSkew)) {
		return fmt.Errorf("keys: onion cert: not valid before %s", c.Created.Format(time.RFC3339))
	}
	if now.After(c.Expires) {
		return fmt.Errorf("keys: onion cert: expired at %s", c.Expires.Format(time.RFC3339))
	}
	return nil
}
