package onion

import (
	"crypto/aes"
	"crypto/cipher"
	crand "crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
)

// Layered relay crypto (SPEC.md §5). Every layer is AES-256-GCM with a full
// 16-byte tag over the whole cell as the hop sees it, so a cell changed on
// its way is refused by the next hop that removes a layer (G3). Nonces are
// per-hop, per-direction cell counters (G4). Every layer's associated data
// is the cell's command byte (SPEC.md §5.4), which relays pass on unchanged:
// a relay that turns RELAY into RELAY_EARLY to mark a circuit is caught by
// the next hop, like any other change.

// MaxCellsPerKey is how many cells one hop's key may protect in one
// direction. The circuit is torn down when it is reached, long before the
// 64-bit counter could wrap; 2^32 cells of 256 AES blocks keep AES-GCM's
// distinguishing advantage below 2^-48.
const MaxCellsPerKey = 1 << 32

const (
	gcmNonceLen = 12
	// gcmFirstCounter is the 32-bit counter GCM starts encrypting at for a
	// 96-bit nonce (NIST SP 800-38D: J0 = nonce || 1, data from inc32(J0)).
	gcmFirstCounter = 2
	aesBlockLen     = 16
	recognizedOff   = fillerLen
	relayBodyOff    = fillerLen + RecognizedLen
)

var (
	// ErrTampered means a cell failed authentication: it was changed on
	// the way, or is not from this circuit. The circuit must be destroyed.
	ErrTampered = errors.New("onion: cell failed authentication")
	// ErrCellLimit means a key reached MaxCellsPerKey; the circuit must be
	// torn down and a new one built.
	ErrCellLimit = errors.New("onion: cell limit for this circuit reached")
	// ErrUnrecognized means a backward cell authenticated at no hop.
	ErrUnrecognized = errors.New("onion: cell recognized by no hop")
	// ErrNotRelayCell means a layer was asked to process a cell whose
	// command is neither RELAY nor RELAY_EARLY.
	ErrNotRelayCell = errors.New("onion: layered crypto on a cell that is not RELAY or RELAY_EARLY")
)

// RelayBody returns the relay body inside a decrypted RELAY payload (the
// cell's plaintext after its last layer came off), or the place to write
// one before encrypting.
func RelayBody(payload []byte) []byte {
	return payload[relayBodyOff : relayBodyOff+RelayBodyLen]
}

// layerCipher is one hop's layer in one direction.
type layerCipher struct {
	aead       cipher.AEAD
	block      cipher.Block
	recognized [RecognizedLen]byte
	counter    uint64
	// ad is the associated data of the cell being processed: its
	// command byte.
	ad [cellCmdLen]byte

	// Scratch space, kept here rather than on the stack because slices of
	// it pass through the cipher interfaces and would escape: the relay
	// path must not allocate per cell.
	nonce   [gcmNonceLen]byte // nonce of the cell being processed
	ctr, ks [aesBlockLen]byte
}

func (l *layerCipher) init(key *[aeadKeyLen]byte, recognized *[RecognizedLen]byte) error {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return fmt.Errorf("onion: layer key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("onion: layer key: %w", err)
	}
	l.block, l.aead, l.recognized, l.counter = block, aead, *recognized, 0
	return nil
}

// nonceAt writes the nonce for cell number counter: 4 zero bytes then the
// counter, big-endian (SPEC.md §5.1).
func nonceAt(n *[gcmNonceLen]byte, counter uint64) {
	*n = [gcmNonceLen]byte{}
	binary.BigEndian.PutUint64(n[4:], counter)
}

// keystream XORs into dst GCM's keystream block b for l.nonce: the
// bytes that GCM under this key and nonce XORs onto plaintext bytes
// [16b, 16b+16). The client needs them to predict what each hop will see.
func (l *layerCipher) keystream(dst []byte, b int) {
	copy(l.ctr[:], l.nonce[:])
	binary.BigEndian.PutUint32(l.ctr[gcmNonceLen:], uint32(gcmFirstCounter+b))
	l.block.Encrypt(l.ks[:], l.ctr[:])
	subtle.XORBytes(dst[:aesBlockLen], dst[:aesBlockLen], l.ks[:])
}

// setNonce makes the next cell's nonce and associated data current.
func (l *layerCipher) setNonce(cmd CellCmd) {
	nonceAt(&l.nonce, l.counter)
	l.ad[0] = byte(cmd)
}

// checkLayered refuses a payload of the wrong size or a command that
// carries no layers.
func checkLayered(cmd CellCmd, p []byte) error {
	if len(p) != CellPayloadLen {
		return fmt.Errorf("onion: relay payload is %d bytes, want %d", len(p), CellPayloadLen)
	}
	if cmd != CellRelay && cmd != CellRelayEarly {
		return fmt.Errorf("%w: %v", ErrNotRelayCell, cmd)
	}
	return nil
}

func (l *layerCipher) reserve() error {
	if l.counter >= MaxCellsPerKey {
		return ErrCellLimit
	}
	return nil
}

// RelayLayer is the one layer a relay holds for a circuit.
type RelayLayer struct {
	fwd, bwd layerCipher
}

// NewRelayLayer sets up a relay's layer from the keys its handshake made.
func NewRelayLayer(k *HopKeys) (*RelayLayer, error) {
	r := new(RelayLayer)
	if err := r.fwd.init(&k.Forward, &k.ForwardRecognized); err != nil {
		return nil, err
	}
	if err := r.bwd.init(&k.Backward, &k.BackwardRecognized); err != nil {
		return nil, err
	}
	return r, nil
}

// DecryptForward removes this relay's layer, in place, from the
// CellPayloadLen-byte payload of a RELAY or RELAY_EARLY cell (cmd) coming
// from the client side; the cell goes on with the same command.
// If the cell is this relay's, recognized is true and RelayBody(p) holds its
// body; otherwise p is ready to forward to the next hop. tag is the cell's
// tag at this layer, which flow control acknowledges. When the cell fails authentication
// (ErrTampered) p is zeroed; other errors come before any decryption and
// leave p as it was.
func (r *RelayLayer) DecryptForward(cmd CellCmd, p []byte) (recognized bool, tag [TagLen]byte, err error) {
	if err := checkLayered(cmd, p); err != nil {
		return false, tag, err
	}
	if err := r.fwd.reserve(); err != nil {
		return false, tag, err
	}
	r.fwd.setNonce(cmd)
	r.fwd.counter++
	copy(tag[:], p[RelayPlainLen:])
	if _, err := r.fwd.aead.Open(p[:0], r.fwd.nonce[:], p, r.fwd.ad[:]); err != nil {
		clear(p)
		return false, tag, ErrTampered
	}
	if subtle.ConstantTimeCompare(p[recognizedOff:relayBodyOff], r.fwd.recognized[:]) == 1 {
		return true, tag, nil
	}
	// SPEC.md §5.2: the next hop's cell is one zero block followed by the
	// plaintext, whose last 16 bytes are the next hop's tag.
	copy(p[aesBlockLen:], p[:RelayPlainLen])
	clear(p[:aesBlockLen])
	return false, tag, nil
}

// EncryptBackwardOrigin turns a relay body written at RelayBody(p) into a
// cell with command cmd from this relay to the client, in place, and
// returns its tag. Backward cells are RELAY (SPEC.md §7.6).
func (r *RelayLayer) EncryptBackwardOrigin(cmd CellCmd, p []byte) (tag [TagLen]byte, err error) {
	if err := checkLayered(cmd, p); err != nil {
		return tag, err
	}
	clear(p[:recognizedOff])
	copy(p[recognizedOff:relayBodyOff], r.bwd.recognized[:])
	return r.sealBackward(cmd, p)
}

// EncryptBackward adds this relay's layer, in place, to a cell with
// command cmd coming from the next hop towards the client.
func (r *RelayLayer) EncryptBackward(cmd CellCmd, p []byte) error {
	if err := checkLayered(cmd, p); err != nil {
		return err
	}
	// SPEC.md §5.3: the first block is dropped so the cell keeps its size
	// with this layer's tag appended.
	copy(p, p[aesBlockLen:])
	_, err := r.sealBackward(cmd, p)
	return err
}

func (r *RelayLayer) sealBackward(cmd CellCmd, p []byte) (tag [TagLen]byte, err error) {
	if err := r.bwd.reserve(); err != nil {
		return tag, err
	}
	r.bwd.setNonce(cmd)
	r.bwd.counter++
	r.bwd.aead.Seal(p[:0], r.bwd.nonce[:], p[:RelayPlainLen], r.bwd.ad[:])
	copy(tag[:], p[RelayPlainLen:])
	return tag, nil
}

// ClientCrypto holds the client's layers for every hop of one circuit.
type ClientCrypto struct {
	hops [MaxHops]struct{ fwd, bwd layerCipher }
	n    int
	// pad fills the part of a forward cell's filler region that no hop
	// before the target wrote (SPEC.md §5.2), so that the target cannot
	// count the hops before it. Seeded from crypto/rand on first use;
	// ChaCha8 is a cryptographically strong generator, and per cell it
	// costs far less than a system call.
	pad *rand.ChaCha8
}

// AddHop appends the layer of a newly extended-to hop.
func (c *ClientCrypto) AddHop(k *HopKeys) error {
	if c.n == MaxHops {
		return fmt.Errorf("onion: circuit already has the maximum of %d hops", MaxHops)
	}
	h := &c.hops[c.n]
	if err := h.fwd.init(&k.Forward, &k.ForwardRecognized); err != nil {
		return err
	}
	if err := h.bwd.init(&k.Backward, &k.BackwardRecognized); err != nil {
		return err
	}
	c.n++
	return nil
}

// Hops reports how many hops the circuit has.
func (c *ClientCrypto) Hops() int { return c.n }

// EncryptForward wraps a relay body written at RelayBody(p) in the layers of
// hops 0..target, in place, for a cell with command cmd (RELAY or
// RELAY_EARLY), so that hop target recognizes it and every hop before it
// authenticates the whole cell it receives, command included. It returns
// the cell's tag at the target's layer, which flow control acknowledges.
func (c *ClientCrypto) EncryptForward(cmd CellCmd, p []byte, target int) (tag [TagLen]byte, err error) {
	if err := checkLayered(cmd, p); err != nil {
		return tag, err
	}
	if target < 0 || target >= c.n {
		return tag, fmt.Errorf("onion: no hop %d in a %d-hop circuit", target, c.n)
	}
	for i := 0; i <= target; i++ {
		if err := c.hops[i].fwd.reserve(); err != nil {
			return tag, err
		}
		c.hops[i].fwd.setNonce(cmd)
	}
	if c.pad == nil {
		var seed [32]byte
		crand.Read(seed[:])
		c.pad = rand.NewChaCha8(seed)
	}

	// SPEC.md §5.2: each hop before the target prepends a zero block after
	// decrypting. filler is what those blocks look like when the cell
	// reaches the target; the target's plaintext is chosen so that its
	// layer turns into exactly that.
	var filler, next [fillerLen]byte
	for i := 0; i < target; i++ {
		blocks := i // filler blocks that hop i receives
		clear(next[:aesBlockLen])
		for b := 0; b < blocks; b++ {
			blk := next[aesBlockLen*(b+1) : aesBlockLen*(b+2)]
			copy(blk, filler[aesBlockLen*b:aesBlockLen*(b+1)])
			c.hops[i].fwd.keystream(blk, b)
		}
		filler = next
	}
	t := &c.hops[target].fwd
	for b := 0; b < target; b++ {
		blk := p[aesBlockLen*b : aesBlockLen*(b+1)]
		copy(blk, filler[aesBlockLen*b:aesBlockLen*(b+1)])
		t.keystream(blk, b)
	}
	// The rest of the region is random, not zero: with zeros there, hop
	// t would see exactly t blocks that are not, and know its position.
	c.pad.Read(p[aesBlockLen*target : recognizedOff])
	copy(p[recognizedOff:relayBodyOff], t.recognized[:])
	t.aead.Seal(p[:0], t.nonce[:], p[:RelayPlainLen], t.ad[:])
	copy(tag[:], p[RelayPlainLen:])

	for i := target - 1; i >= 0; i-- {
		copy(p, p[aesBlockLen:]) // drop the block hop i will prepend again
		c.hops[i].fwd.aead.Seal(p[:0], c.hops[i].fwd.nonce[:], p[:RelayPlainLen], c.hops[i].fwd.ad[:])
	}
	for i := 0; i <= target; i++ {
		c.hops[i].fwd.counter++
	}
	return tag, nil
}

// DecryptBackward removes the layers of a cell with command cmd coming
// back to the client, in place. It finds the hop that sent it, checks
// every layer's tag over the whole cell that layer covered, and leaves the
// body at RelayBody(p). When a layer fails authentication (ErrTampered) p
// is zeroed; other errors (ErrUnrecognized, ErrCellLimit, a bad size or
// command) come before any layer is removed and leave p as it was. Any
// failure means the circuit must be destroyed.
func (c *ClientCrypto) DecryptBackward(cmd CellCmd, p []byte) (origin int, tag [TagLen]byte, err error) {
	if err := checkLayered(cmd, p); err != nil {
		return 0, tag, err
	}
	for i := 0; i < c.n; i++ {
		c.hops[i].bwd.setNonce(cmd)
	}

	// Find the origin without authenticating yet (SPEC.md §5.3): the
	// marker of hop j sits, under j+1 layers of keystream, j blocks
	// earlier in the received cell than in hop j's plaintext.
	origin = -1
	for j := 0; j < c.n && origin < 0; j++ {
		var peek [aesBlockLen]byte
		copy(peek[:], p[recognizedOff-aesBlockLen*j:])
		for m := 0; m <= j; m++ {
			c.hops[m].bwd.keystream(peek[:], recognizedOff/aesBlockLen-(j-m))
		}
		if subtle.ConstantTimeCompare(peek[:], c.hops[j].bwd.recognized[:]) == 1 {
			origin = j
		}
	}
	if origin < 0 {
		return 0, tag, ErrUnrecognized
	}
	for i := 0; i <= origin; i++ {
		if err := c.hops[i].bwd.reserve(); err != nil {
			return 0, tag, err
		}
	}

	for j := 0; j <= origin; j++ {
		if j > 0 {
			// Restore the block hop j-1 dropped: the origin wrote zeros
			// there, seen through the keystreams of hops j..origin.
			copy(p[aesBlockLen:], p[:RelayPlainLen])
			clear(p[:aesBlockLen])
			for m := j; m <= origin; m++ {
				c.hops[m].bwd.keystream(p[:aesBlockLen], m-j)
			}
		}
		copy(tag[:], p[RelayPlainLen:])
		if _, err := c.hops[j].bwd.aead.Open(p[:0], c.hops[j].bwd.nonce[:], p, c.hops[j].bwd.ad[:]); err != nil {
			clear(p)
			return 0, tag, fmt.Errorf("%w at hop %d's layer", ErrTampered, j)
		}
	}
	if subtle.ConstantTimeCompare(p[recognizedOff:relayBodyOff], c.hops[origin].bwd.recognized[:]) != 1 ||
		!allZero(p[:recognizedOff]) {
		clear(p)
		return 0, tag, ErrTampered
	}
	for i := 0; i <= origin; i++ {
		c.hops[i].bwd.counter++
	}
	return origin, tag, nil
}
