package keys

import (
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

	mu      sync.Mutex // guards the following fields
	priv    [32]byte   // the raw random bytes; X25519 clamps them itself
	retired bool
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
	return &OnionKey{priv: priv, pub: pub, cert: newOnionCert(id, pub, created, expires)}, nil
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
func (k *OnionKey) SharedSecret(peer [32]byte) ([32]byte, error) {
	var out [32]byte
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.retired {
		return out, ErrRetired
	}
	b, err := curve25519.X25519(k.priv[:], peer[:])
	if err != nil {
		return out, fmt.Errorf("keys: onion handshake: %w", err)
	}
	copy(out[:], b)
	clear(b)
	return out, nil
}

// retire wipes the private key. Best effort only: Go may have copied it
// (stack moves, the GC, copies handed out by Private), but this keeps the
// long-lived copy from outliving the key's use.
func (k *OnionKey) retire() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.priv[:])
	k.retired = true
}
