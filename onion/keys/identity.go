package keys

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
)

// Identity is a node's long-term Ed25519 key. It only signs through Sign, so
// every signature is bound to a label and cannot be replayed as another kind
// of statement.
type Identity struct {
	priv ed25519.PrivateKey
	id   NodeID
}

// GenerateIdentity makes a new identity from 32 bytes of rand. The seed is
// read here rather than by ed25519.GenerateKey, which may ignore a custom
// reader, so a fixed rand gives the same identity every time.
func GenerateIdentity(rand io.Reader) (*Identity, error) {
	var seed [ed25519.SeedSize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("keys: generate identity: %w", err)
	}
	defer clear(seed[:])
	return identityFromSeed(seed[:]), nil
}

func identityFromSeed(seed []byte) *Identity {
	priv := ed25519.NewKeyFromSeed(seed)
	return &Identity{priv: priv, id: NodeIDFromIdentity(priv.Public().(ed25519.PublicKey))}
}

// Public returns the identity public key.
func (i *Identity) Public() ed25519.PublicKey {
	return bytes.Clone(i.priv[ed25519.SeedSize:])
}

// ID returns the node ID of this identity.
func (i *Identity) ID() NodeID { return i.id }

// seed returns the 32 bytes the key file stores.
func (i *Identity) seed() []byte { return i.priv.Seed() }

// Sign signs label || 0x00 || msg. Labels are constants of the calling
// package, so a label with a zero byte is a programming error.
func (i *Identity) Sign(label string, msg []byte) []byte {
	m, ok := signedMessage(label, msg)
	if !ok {
		panic("keys: internal error: signature label contains a zero byte")
	}
	return ed25519.Sign(i.priv, m)
}

// Verify reports whether sig is pub's signature of msg under label, as made
// by Identity.Sign. It never panics on malformed keys or signatures.
func Verify(pub ed25519.PublicKey, label string, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	m, ok := signedMessage(label, msg)
	return ok && ed25519.Verify(pub, m, sig)
}

// signedMessage builds label || 0x00 || msg. The zero byte ends the label,
// so no (label, msg) pair can be read as another; that only holds if the
// label itself has no zero byte.
func signedMessage(label string, msg []byte) ([]byte, bool) {
	if bytes.IndexByte([]byte(label), 0) >= 0 {
		return nil, false
	}
	m := make([]byte, 0, len(label)+1+len(msg))
	m = append(m, label...)
	m = append(m, 0)
	return append(m, msg...), true
}
