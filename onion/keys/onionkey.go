package keys

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/crypto/curve25519"
)

// OnionKey is a static X25519 key pair with the cert that publishes it. Its
// public half and cert never change; the private half is wiped when the
// Store drops the key (see retire).
type OnionKey struct {
	pub  [32]byte
	cert *OnionCert

	mu      sync.RWMutex // guards the following fields
	priv    [32]byte     // the raw random bytes; X25519 clamps them itself
	retired bool
	// ecdh is the private key parsed once: building it costs a scalar
	// multiplication, which would otherwise double every handshake's cost.
	ecdh *ecdh.PrivateKey
}

// GenerateOnionKey makes a key pair from 32 bytes of rand and has id certify
// it from created until expires.
func GenerateOnionKey(id *Identity, rand io.Reader, created, expires time.Time) (*OnionKey, error) {
	var priv [32]byte
	if _, err := io.ReadFull(rand, priv[:]); err != nil {
		return nil, fmt.Errorf("keys: generate onion key: %w", err)
	}
	pub, err := x25519Public(priv)
	if err != nil {
		return nil, fmt.Errorf("keys: generate onion key: %w", err)
	}
	k := &OnionKey{priv: priv, pub: pub, cert: newOnionCert(id, pub, created, expires)}
	if err := k.initECDH(); err != nil {
		return nil, err
	}
	return k, nil
}

func x25519Public(priv [32]byte) ([32]byte, error) {
	var pub [32]byte
	b, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		return pub, err
	}
	copy(pub[:], b)
	return pub, nil
}

// Public returns the X25519 public key.
func (k *OnionKey) Public() [32]byte { return k.pub }

// Cert returns the cert that binds this key to its identity.
func (k *OnionKey) Cert() *OnionCert { return k.cert }

// Created returns when the key was made (second resolution).
func (k *OnionKey) Created() time.Time { return k.cert.Created }

// Private returns a copy of the private key bytes. Once the Store has
// dropped the key they are all zero; prefer SharedSecret, which says so.
func (k *OnionKey) Private() [32]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.priv
}

// ErrRetired is returned by SharedSecret for a key the Store has dropped.
var ErrRetired = errors.New("keys: onion key has been retired")

// SharedSecret returns X25519(private, peer). It fails for a retired key and
// for a low-order peer point, whose all-zero result would be a secret any
// attacker knows.
//
// Handshakes on one key run in parallel: only a retirement excludes them.
func (k *OnionKey) SharedSecret(peer [32]byte) ([32]byte, error) {
	var out [32]byte
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.retired {
		return out, ErrRetired
	}
	if k.ecdh == nil {
		return out, errors.New("keys: onion key not initialized")
	}
	pk, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil {
		return out, fmt.Errorf("keys: onion handshake: %w", err)
	}
	b, err := k.ecdh.ECDH(pk)
	if err != nil {
		return out, fmt.Errorf("keys: onion handshake: %w", err)
	}
	copy(out[:], b)
	clear(b)
	return out, nil
}

// initECDH parses the private key for SharedSecret.
func (k *OnionKey) initECDH() error {
	key, err := ecdh.X25519().NewPrivateKey(k.priv[:])
	if err != nil {
		return fmt.Errorf("keys: onion key: %w", err)
	}
	k.ecdh = key
	return nil
}

// retire wipes the private key. Best effort only: Go may have copied it
// (stack moves, the GC, copies handed out by Private), but this keeps the
// long-lived copy from outliving the key's use.
func (k *OnionKey) retire() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.priv[:])
	k.ecdh = nil // the library's copy cannot be wiped; drop it
	k.retired = true
}
