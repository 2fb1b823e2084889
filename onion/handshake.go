package onion

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/kem/mlkem/mlkem768"
)

// HandshakeTypeHybridV1 names the only handshake defined so far: ntor v3 in
// spirit, with ML-KEM-768 added (SPEC.md §4). Append-only.
const HandshakeTypeHybridV1 uint16 = 0x0001

// Domain-separation labels (SPEC.md §4.3). Each use of the handshake's
// secrets hashes its own label, so no output of one step can stand in for
// another's.
const (
	hsProtoID       = "veil-hs-x25519-mlkem768-v1"
	hsLabelTranscpt = hsProtoID + ":transcript"
	hsLabelAuth     = hsProtoID + ":auth"
	hsLabelKeys     = hsProtoID + ":circuit-keys"
)

// Offsets of the handshake request (SPEC.md §4.1):
//
//	type (2) | relay node ID (32) | relay onion key B (32) | client X (32) | client ML-KEM ek (1184)
const (
	reqTypeOff  = 0
	reqIDOff    = reqTypeOff + 2
	reqOnionOff = reqIDOff + NodeIDLen
	reqXOff     = reqOnionOff + x25519Len
	reqEKOff    = reqXOff + x25519Len
	reqEnd      = reqEKOff + mlkemPublicKeyLen
)

// Offsets of the handshake reply (SPEC.md §4.2), zero-padded to
// HandshakeLen so both directions take the same number of cells:
//
//	relay Y (32) | ML-KEM ciphertext (1088) | auth (32) | zeros (130)
const (
	repYOff    = 0
	repCTOff   = repYOff + x25519Len
	repAuthOff = repCTOff + mlkemCiphertextLen
	authLen    = 32
	repEnd     = repAuthOff + authLen
)

// Compile-time checks that the layouts fill what sizes.go promises.
var (
	_ [HandshakeLen - reqEnd]struct{}
	_ [reqEnd - HandshakeLen]struct{}
	_ [HandshakeLen - repEnd]struct{}
)

// Sizes of the per-hop key material (SPEC.md §4.4).
const (
	aeadKeyLen     = 32 // AES-256-GCM
	hopKeyMaterial = 2*aeadKeyLen + 2*RecognizedLen
)

var (
	// ErrReplay is returned by the relay for a handshake request it has
	// already answered (G4).
	ErrReplay = errors.New("onion: handshake replayed")
	// ErrUnknownOnionKey means the request names an onion key the relay
	// does not hold (rotated away, or never its own).
	ErrUnknownOnionKey = errors.New("onion: handshake names an unknown onion key")
	// ErrWrongRelay means the request is addressed to another relay.
	ErrWrongRelay = errors.New("onion: handshake addressed to another relay")
	// ErrRelayAuth means the reply did not prove knowledge of the onion key.
	ErrRelayAuth = errors.New("onion: relay did not prove knowledge of its onion key")
)

// HopKeys is what one handshake yields: the keys for one hop's layer in
// each direction and the markers by which that hop recognizes its cells.
type HopKeys struct {
	Forward, Backward                     [aeadKeyLen]byte
	ForwardRecognized, BackwardRecognized [RecognizedLen]byte
}

// Clear zeroes the key material.
func (k *HopKeys) Clear() { *k = HopKeys{} }

// ClientHandshake is the client's side of one hop's handshake. Call
// NewClientHandshake, send Request, then Finish with the reply. Secrets are
// zeroed by Finish whatever its outcome, and by Clear.
type ClientHandshake struct {
	relayID  [NodeIDLen]byte
	onionKey [x25519Len]byte
	x        [x25519Len]byte // ephemeral X25519 scalar
	xKey     *ecdh.PrivateKey
	kemSeed  [mlkem768.KeySeedSize]byte
	dk       *mlkem768.PrivateKey
	request  [HandshakeLen]byte
	done     bool
}

// NewClientHandshake starts a handshake with the relay whose node ID is
// relayID and whose current signed onion key is onionKey. rnd supplies the
// fresh X25519 scalar and ML-KEM-768 key-pair seed; nil means crypto/rand.
func NewClientHandshake(relayID [NodeIDLen]byte, onionKey [x25519Len]byte, rnd io.Reader) (*ClientHandshake, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	h := &ClientHandshake{relayID: relayID, onionKey: onionKey}
	if _, err := io.ReadFull(rnd, h.x[:]); err != nil {
		return nil, fmt.Errorf("onion: handshake randomness: %w", err)
	}
	if _, err := io.ReadFull(rnd, h.kemSeed[:]); err != nil {
		return nil, fmt.Errorf("onion: handshake randomness: %w", err)
	}
	xKey, err := ecdh.X25519().NewPrivateKey(h.x[:])
	if err != nil {
		return nil, fmt.Errorf("onion: client ephemeral key: %w", err)
	}
	h.xKey = xKey
	ek, dk := mlkem768.NewKeyFromSeed(h.kemSeed[:])
	h.dk = dk

	r := h.request[:]
	binary.BigEndian.PutUint16(r[reqTypeOff:], HandshakeTypeHybridV1)
	copy(r[reqIDOff:], relayID[:])
	copy(r[reqOnionOff:], onionKey[:])
	copy(r[reqXOff:], xKey.PublicKey().Bytes())
	ek.Pack(r[reqEKOff:reqEnd])
	return h, nil
}

// Request returns the HandshakeLen bytes to send in CREATE or EXTEND.
func (h *ClientHandshake) Request() []byte { return h.request[:] }

// Finish checks the relay's reply and derives the hop's keys. A reply that
// does not prove knowledge of the onion key's private half fails with
// ErrRelayAuth. The handshake cannot be used again afterwards.
func (h *ClientHandshake) Finish(reply []byte) (*HopKeys, error) {
	defer h.Clear()
	if h.done {
		return nil, errors.New("onion: handshake already finished")
	}
	h.done = true
	if len(reply) != HandshakeLen {
		return nil, fmt.Errorf("onion: handshake reply is %d bytes, want %d", len(reply), HandshakeLen)
	}
	if !allZero(reply[repEnd:]) {
		return nil, errors.New("onion: handshake reply padding is not zero")
	}
	Y := reply[repYOff:repCTOff]
	ct := reply[repCTOff:repAuthOff]

	var sec handshakeSecrets
	defer sec.clear()
	var err error
	if err = x25519Into(sec.eph[:], h.xKey, Y); err != nil {
		return nil, fmt.Errorf("onion: handshake reply: relay ephemeral key: %w", err)
	}
	if err = x25519Into(sec.static[:], h.xKey, h.onionKey[:]); err != nil {
		return nil, fmt.Errorf("onion: handshake: onion key: %w", err)
	}
	// ML-KEM decapsulation never fails: a forged ciphertext yields an
	// unrelated pseudo-random secret (implicit rejection), so the auth
	// check below is what refuses it.
	h.dk.DecapsulateTo(sec.kem[:], ct)

	auth, keys, err := sec.derive(h.request[:], Y, ct)
	if err != nil {
		return nil, err
	}
	defer clear(auth[:])
	if subtle.ConstantTimeCompare(auth[:], reply[repAuthOff:repEnd]) != 1 {
		keys.Clear()
		return nil, ErrRelayAuth
	}
	return keys, nil
}

// Clear zeroes the client's secrets. The X25519 and ML-KEM private key
// objects belong to their libraries and cannot be wiped; they are dropped,
// and the bytes they were made from are zeroed.
func (h *ClientHandshake) Clear() {
	clear(h.x[:])
	clear(h.kemSeed[:])
	h.xKey = nil
	h.dk = nil
}

// OnionPrivateKey is the private half of a relay's onion key. keys.OnionKey
// is one; it keeps the parsed key so each handshake pays for one scalar
// multiplication, not two.
type OnionPrivateKey interface {
	// SharedSecret returns X25519(private key, peer), refusing a peer
	// point whose result would be all zeros.
	SharedSecret(peer [x25519Len]byte) ([x25519Len]byte, error)
}

// NewOnionPrivateKey wraps raw private key bytes, for tests and tools.
func NewOnionPrivateKey(priv [x25519Len]byte) (OnionPrivateKey, error) {
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		return nil, fmt.Errorf("onion: onion key: %w", err)
	}
	return ecdhOnionKey{k}, nil
}

type ecdhOnionKey struct{ k *ecdh.PrivateKey }

func (o ecdhOnionKey) SharedSecret(peer [x25519Len]byte) (out [x25519Len]byte, err error) {
	err = x25519Into(out[:], o.k, peer[:])
	return out, err
}

// OnionKeyLookup returns the private half of one of the relay's onion keys
// that are currently valid (the current one, or the previous one during its
// grace period), given the public half a request names.
type OnionKeyLookup func(pub [x25519Len]byte) (OnionPrivateKey, bool)

// RelayIdentity is what a relay needs to answer handshakes.
type RelayIdentity struct {
	ID       [NodeIDLen]byte
	OnionKey OnionKeyLookup
	// Replay refuses requests seen before; nil disables the check, which
	// only tests and vector generation may do.
	Replay *ReplayCache
	// Rand supplies the relay's fresh X25519 scalar and ML-KEM
	// encapsulation seed; nil means crypto/rand.
	Rand io.Reader
}

// Respond answers one handshake request: it returns the reply to send in
// CREATED or EXTENDED and the hop's keys.
func (ri *RelayIdentity) Respond(req []byte) ([]byte, *HopKeys, error) {
	if len(req) != HandshakeLen {
		return nil, nil, fmt.Errorf("onion: handshake request is %d bytes, want %d", len(req), HandshakeLen)
	}
	if t := binary.BigEndian.Uint16(req[reqTypeOff:]); t != HandshakeTypeHybridV1 {
		return nil, nil, fmt.Errorf("onion: handshake type %#04x not supported", t)
	}
	if subtle.ConstantTimeCompare(req[reqIDOff:reqOnionOff], ri.ID[:]) != 1 {
		return nil, nil, ErrWrongRelay
	}
	var B [x25519Len]byte
	copy(B[:], req[reqOnionOff:reqXOff])
	b, ok := ri.OnionKey(B)
	if !ok {
		return nil, nil, ErrUnknownOnionKey
	}
	var X [x25519Len]byte
	copy(X[:], req[reqXOff:reqEKOff])
	var ek mlkem768.PublicKey
	if err := ek.Unpack(req[reqEKOff:reqEnd]); err != nil {
		return nil, nil, fmt.Errorf("onion: handshake request: ML-KEM key: %w", err)
	}
	// The replay check comes after the cheap validity checks, so garbage
	// cannot fill the cache, and before any secret is computed.
	if ri.Replay != nil && !ri.Replay.Add(B, req) {
		return nil, nil, ErrReplay
	}

	rnd := ri.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	var y [x25519Len]byte
	var encSeed [mlkem768.EncapsulationSeedSize]byte
	defer clear(y[:])
	defer clear(encSeed[:])
	if _, err := io.ReadFull(rnd, y[:]); err != nil {
		return nil, nil, fmt.Errorf("onion: handshake randomness: %w", err)
	}
	if _, err := io.ReadFull(rnd, encSeed[:]); err != nil {
		return nil, nil, fmt.Errorf("onion: handshake randomness: %w", err)
	}

	reply := make([]byte, HandshakeLen)
	yKey, err := ecdh.X25519().NewPrivateKey(y[:])
	if err != nil {
		return nil, nil, fmt.Errorf("onion: relay ephemeral key: %w", err)
	}
	copy(reply[repYOff:], yKey.PublicKey().Bytes())

	var sec handshakeSecrets
	defer sec.clear()
	if err := x25519Into(sec.eph[:], yKey, X[:]); err != nil {
		return nil, nil, fmt.Errorf("onion: handshake request: client key: %w", err)
	}
	if sec.static, err = b.SharedSecret(X); err != nil {
		return nil, nil, fmt.Errorf("onion: handshake request: client key: %w", err)
	}
	ct := reply[repCTOff:repAuthOff]
	ek.EncapsulateTo(ct, sec.kem[:], encSeed[:])

	auth, keys, err := sec.derive(req, reply[repYOff:repCTOff], ct)
	if err != nil {
		return nil, nil, err
	}
	copy(reply[repAuthOff:], auth[:])
	clear(auth[:])
	return reply, keys, nil
}

// handshakeSecrets holds the three shared secrets while keys are derived.
type handshakeSecrets struct {
	eph    [32]byte // X25519(x, Y) = X25519(y, X): forward secrecy
	static [32]byte // X25519(x, B) = X25519(b, X): authenticates the relay
	kem    [mlkem768.SharedKeySize]byte
}

func (s *handshakeSecrets) clear() { *s = handshakeSecrets{} }

// derive is the combiner of SPEC.md §4.3. The transcript hash covers the
// whole request (relay ID, onion key, X, ek) and the reply's Y and
// ciphertext, so every public value is bound to the keys, as in X-Wing and
// TLS hybrid key exchange; both X25519 secrets and the ML-KEM secret feed
// one HKDF-Extract, so the keys stay secret while either primitive holds.
func (s *handshakeSecrets) derive(req, Y, ct []byte) (auth [authLen]byte, keys *HopKeys, err error) {
	th := sha256.New()
	th.Write([]byte(hsLabelTranscpt))
	th.Write(req)
	th.Write(Y)
	th.Write(ct)
	var transcript [sha256.Size]byte
	th.Sum(transcript[:0])

	ikm := make([]byte, 0, len(s.eph)+len(s.static)+len(s.kem)+len(transcript))
	ikm = append(ikm, s.eph[:]...)
	ikm = append(ikm, s.static[:]...)
	ikm = append(ikm, s.kem[:]...)
	ikm = append(ikm, transcript[:]...)
	defer clear(ikm)

	prk, err := hkdf.Extract(sha256.New, ikm, []byte(hsProtoID))
	if err != nil {
		return auth, nil, fmt.Errorf("onion: handshake extract: %w", err)
	}
	defer clear(prk)
	a, err := hkdf.Expand(sha256.New, prk, hsLabelAuth, authLen)
	if err != nil {
		return auth, nil, fmt.Errorf("onion: handshake expand: %w", err)
	}
	copy(auth[:], a)
	clear(a)
	km, err := hkdf.Expand(sha256.New, prk, hsLabelKeys, hopKeyMaterial)
	if err != nil {
		return auth, nil, fmt.Errorf("onion: handshake expand: %w", err)
	}
	defer clear(km)
	keys = new(HopKeys)
	rest := km
	rest = rest[copy(keys.Forward[:], rest):]
	rest = rest[copy(keys.Backward[:], rest):]
	rest = rest[copy(keys.ForwardRecognized[:], rest):]
	copy(keys.BackwardRecognized[:], rest)
	return auth, keys, nil
}

// x25519Into computes X25519(key, point) into dst, refusing low-order
// points (an all-zero result), which would make the secret public.
func x25519Into(dst []byte, key *ecdh.PrivateKey, point []byte) error {
	pub, err := ecdh.X25519().NewPublicKey(point)
	if err != nil {
		return err
	}
	out, err := key.ECDH(pub)
	if err != nil {
		return err
	}
	copy(dst, out)
	clear(out)
	return nil
}

func allZero(b []byte) bool { return len(bytes.Trim(b, "\x00")) == 0 }
