package onion

import (
	"bytes"
	"crypto/sha3"
	"errors"
	"io"
	"testing"

	"golang.org/x/crypto/curve25519"
)

// detRand is a deterministic randomness source for tests and vectors:
// SHAKE-128 of a label (testdata/README.md says which labels made what).
func detRand(label string) io.Reader {
	h := sha3.NewSHAKE128()
	h.Write([]byte(label))
	return h
}

// testRelay is a relay's long-term handshake state for tests.
type testRelay struct {
	id         [NodeIDLen]byte
	onionPriv  [32]byte
	onionPub   [32]byte
	identity   *RelayIdentity
	replay     *ReplayCache
	randSource io.Reader
}

func newTestRelay(t testing.TB, label string) *testRelay {
	t.Helper()
	r := &testRelay{randSource: detRand(label + "/relay-ephemeral")}
	seed := detRand(label + "/relay-long-term")
	io.ReadFull(seed, r.id[:])
	io.ReadFull(seed, r.onionPriv[:])
	pub, err := curve25519.X25519(r.onionPriv[:], curve25519.Basepoint)
	if err != nil {
		t.Fatal(err)
	}
	copy(r.onionPub[:], pub)
	onionKey := mustOnionKey(t, r.onionPriv)
	r.replay = NewReplayCache(0)
	r.identity = &RelayIdentity{
		ID: r.id,
		OnionKey: func(pub [32]byte) (OnionPrivateKey, bool) {
			if pub == r.onionPub {
				return onionKey, true
			}
			return nil, false
		},
		Replay: r.replay,
		Rand:   r.randSource,
	}
	return r
}

func mustOnionKey(t testing.TB, priv [32]byte) OnionPrivateKey {
	t.Helper()
	k, err := NewOnionPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// handshakeKeys runs one handshake and returns the keys both sides got.
func handshakeKeys(t testing.TB, r *testRelay, clientRand io.Reader) (client, relay *HopKeys) {
	t.Helper()
	hs, err := NewClientHandshake(r.id, r.onionPub, clientRand)
	if err != nil {
		t.Fatal(err)
	}
	reply, rk, err := r.identity.Respond(hs.Request())
	if err != nil {
		t.Fatal(err)
	}
	ck, err := hs.Finish(reply)
	if err != nil {
		t.Fatal(err)
	}
	return ck, rk
}

// testCircuit is a client and the relays of one circuit, with no links.
type testCircuit struct {
	client ClientCrypto
	relays []*RelayLayer
	keys   []*HopKeys
}

func newTestCircuitFromKeys(t testing.TB, keys []*HopKeys) *testCircuit {
	t.Helper()
	c := &testCircuit{keys: keys}
	for _, k := range keys {
		if err := c.client.AddHop(k); err != nil {
			t.Fatal(err)
		}
		rl, err := NewRelayLayer(k)
		if err != nil {
			t.Fatal(err)
		}
		c.relays = append(c.relays, rl)
	}
	return c
}

func newTestCircuit(t testing.TB, hops int, label string) *testCircuit {
	t.Helper()
	var keys []*HopKeys
	for i := 0; i < hops; i++ {
		r := newTestRelay(t, label+"/hop"+string(rune('0'+i)))
		ck, rk := handshakeKeys(t, r, detRand(label+"/client"+string(rune('0'+i))))
		if *ck != *rk {
			t.Fatalf("hop %d: client and relay keys differ", i)
		}
		keys = append(keys, ck)
	}
	return newTestCircuitFromKeys(t, keys)
}

// sendForward carries a cell from the client to hop target through every
// hop, and returns the body the target saw.
func (c *testCircuit) sendForward(t testing.TB, body []byte, target int) []byte {
	t.Helper()
	p := make([]byte, CellPayloadLen)
	copy(RelayBody(p), body)
	if _, err := c.client.EncryptForward(CellRelay, p, target); err != nil {
		t.Fatal(err)
	}
	for i := 0; i <= target; i++ {
		rec, _, err := c.relays[i].DecryptForward(CellRelay, p)
		if err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
		if rec != (i == target) {
			t.Fatalf("hop %d: recognized=%v, target %d", i, rec, target)
		}
	}
	return append([]byte(nil), RelayBody(p)...)
}

// sendBackward carries a cell from hop origin back to the client.
func (c *testCircuit) sendBackward(t testing.TB, body []byte, origin int) []byte {
	t.Helper()
	p := make([]byte, CellPayloadLen)
	copy(RelayBody(p), body)
	if _, err := c.relays[origin].EncryptBackwardOrigin(CellRelay, p); err != nil {
		t.Fatal(err)
	}
	for i := origin - 1; i >= 0; i-- {
		if err := c.relays[i].EncryptBackward(CellRelay, p); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := c.client.DecryptBackward(CellRelay, p)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if got != origin {
		t.Fatalf("client found origin %d, want %d", got, origin)
	}
	return append([]byte(nil), RelayBody(p)...)
}

func testBody(n int) []byte {
	b := make([]byte, RelayBodyLen)
	for i := range b {
		b[i] = byte(i*7 + n)
	}
	return b
}

func TestCircuitRoundTripEveryHop(t *testing.T) {
	for hops := 1; hops <= MaxHops; hops++ {
		c := newTestCircuit(t, hops, "roundtrip")
		// Interleave targets and origins so that every hop's counters
		// advance differently from its neighbours'.
		for round := 0; round < 5; round++ {
			for target := 0; target < hops; target++ {
				body := testBody(round*10 + target)
				if got := c.sendForward(t, body, target); !bytes.Equal(got, body) {
					t.Fatalf("%d hops: forward to %d: body changed", hops, target)
				}
				if got := c.sendBackward(t, body, hops-1-target); !bytes.Equal(got, body) {
					t.Fatalf("%d hops: backward from %d: body changed", hops, target)
				}
			}
		}
	}
}

func TestAddHopBeyondMaxHops(t *testing.T) {
	c := newTestCircuit(t, MaxHops, "max")
	if err := c.client.AddHop(c.keys[0]); err == nil {
		t.Fatal("a hop beyond MaxHops was accepted")
	}
}

// TestKeystreamMatchesGCM pins the assumption the filler computation rests
// on: GCM's ciphertext is plaintext XOR keystream blocks from counter 2.
func TestKeystreamMatchesGCM(t *testing.T) {
	var l layerCipher
	var key [32]byte
	var rec [16]byte
	key[0] = 1
	if err := l.init(&key, &rec); err != nil {
		t.Fatal(err)
	}
	nonceAt(&l.nonce, 0x0102030405)
	zeros := make([]byte, 64)
	ct := l.aead.Seal(nil, l.nonce[:], zeros, nil)
	for b := 0; b < 4; b++ {
		ks := make([]byte, 16)
		l.keystream(ks, b)
		if !bytes.Equal(ks, ct[16*b:16*b+16]) {
			t.Fatalf("block %d: keystream differs from GCM", b)
		}
	}
}

// flipEveryBit flips each bit of a cell in turn at one point of its path
// and checks that the next hop to remove a layer refuses it.
func TestTaggingEveryBitForwardAtGuardOutput(t *testing.T) {
	base := newTestCircuit(t, 3, "tagging")
	body := testBody(42)
	for bit := 0; bit < CellPayloadLen*8; bit++ {
		c := newTestCircuitFromKeys(t, base.keys)
		p := make([]byte, CellPayloadLen)
		copy(RelayBody(p), body)
		if _, err := c.client.EncryptForward(CellRelay, p, 2); err != nil {
			t.Fatal(err)
		}
		if rec, _, err := c.relays[0].DecryptForward(CellRelay, p); err != nil || rec {
			t.Fatalf("guard: rec=%v err=%v", rec, err)
		}
		p[bit/8] ^= 1 << (bit % 8) // the guard tampers with what it forwards
		_, _, err := c.relays[1].DecryptForward(CellRelay, p)
		if !errors.Is(err, ErrTampered) {
			t.Fatalf("bit %d: middle accepted a tampered cell (err=%v)", bit, err)
		}
		if !allZero(p) {
			t.Fatalf("bit %d: middle kept plaintext of a refused cell", bit)
		}
	}
}

func TestTaggingEveryBitForwardIntoGuard(t *testing.T) {
	base := newTestCircuit(t, 3, "tagging-in")
	body := testBody(43)
	for bit := 0; bit < CellPayloadLen*8; bit++ {
		c := newTestCircuitFromKeys(t, base.keys)
		p := make([]byte, CellPayloadLen)
		copy(RelayBody(p), body)
		if _, err := c.client.EncryptForward(CellRelay, p, 2); err != nil {
			t.Fatal(err)
		}
		p[bit/8] ^= 1 << (bit % 8)
		if _, _, err := c.relays[0].DecryptForward(CellRelay, p); !errors.Is(err, ErrTampered) {
			t.Fatalf("bit %d: guard accepted a tampered cell (err=%v)", bit, err)
		}
	}
}

func TestTaggingEveryBitBackwardAtGuardOutput(t *testing.T) {
	base := newTestCircuit(t, 3, "tagging-back")
	body := testBody(44)
	for bit := 0; bit < CellPayloadLen*8; bit++ {
		c := newTestCircuitFromKeys(t, base.keys)
		p := make([]byte, CellPayloadLen)
		copy(RelayBody(p), body)
		if _, err := c.relays[2].EncryptBackwardOrigin(CellRelay, p); err != nil {
			t.Fatal(err)
		}
		c.relays[1].EncryptBackward(CellRelay, p)
		c.relays[0].EncryptBackward(CellRelay, p)
		p[bit/8] ^= 1 << (bit % 8)
		_, _, err := c.client.DecryptBackward(CellRelay, p)
		if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrUnrecognized) {
			t.Fatalf("bit %d: client accepted a tampered cell (err=%v)", bit, err)
		}
	}
}

// TestTaggingBackwardAtExitOutput tampers where a colluding exit would, and
// shows the client refuses the cell although the middle and guard cannot.
func TestTaggingBackwardAtExitOutput(t *testing.T) {
	base := newTestCircuit(t, 3, "tagging-exit")
	body := testBody(45)
	// The first block of the exit's output is dropped by the middle and
	// restored by the client from its own keystreams, so flipping it
	// changes nothing that is delivered.
	for bit := aesBlockLen * 8; bit < CellPayloadLen*8; bit += 7 {
		c := newTestCircuitFromKeys(t, base.keys)
		p := make([]byte, CellPayloadLen)
		copy(RelayBody(p), body)
		c.relays[2].EncryptBackwardOrigin(CellRelay, p)
		p[bit/8] ^= 1 << (bit % 8)
		c.relays[1].EncryptBackward(CellRelay, p)
		c.relays[0].EncryptBackward(CellRelay, p)
		if _, _, err := c.client.DecryptBackward(CellRelay, p); err == nil {
			t.Fatalf("bit %d: client accepted a cell the exit tampered with", bit)
		}
	}
}

func TestCellLimit(t *testing.T) {
	c := newTestCircuit(t, 2, "limit")
	c.client.hops[1].fwd.counter = MaxCellsPerKey
	p := make([]byte, CellPayloadLen)
	if _, err := c.client.EncryptForward(CellRelay, p, 1); !errors.Is(err, ErrCellLimit) {
		t.Fatalf("got %v, want ErrCellLimit", err)
	}
	c.relays[0].fwd.counter = MaxCellsPerKey
	if _, _, err := c.relays[0].DecryptForward(CellRelay, p); !errors.Is(err, ErrCellLimit) {
		t.Fatalf("relay: got %v, want ErrCellLimit", err)
	}
}

func TestReplayedCellRefused(t *testing.T) {
	c := newTestCircuit(t, 3, "replay-cell")
	p := make([]byte, CellPayloadLen)
	copy(RelayBody(p), testBody(1))
	c.client.EncryptForward(CellRelay, p, 2)
	replay := append([]byte(nil), p...)
	if _, _, err := c.relays[0].DecryptForward(CellRelay, p); err != nil {
		t.Fatal(err)
	}
	// The same bytes again meet the next nonce and fail (G4).
	if _, _, err := c.relays[0].DecryptForward(CellRelay, replay); !errors.Is(err, ErrTampered) {
		t.Fatalf("replayed cell: got %v, want ErrTampered", err)
	}
}

// TestCommandIsAuthenticated: a cell sent as RELAY is refused as
// RELAY_EARLY by the next hop, and the other way round, so a relay cannot
// use the command as a one-bit mark (SPEC.md §5.4).
func TestCommandIsAuthenticated(t *testing.T) {
	base := newTestCircuit(t, 3, "command")
	for _, sent := range []CellCmd{CellRelay, CellRelayEarly} {
		seen := CellRelay + CellRelayEarly - sent
		c := newTestCircuitFromKeys(t, base.keys)
		p := make([]byte, CellPayloadLen)
		copy(RelayBody(p), testBody(7))
		if _, err := c.client.EncryptForward(sent, p, 2); err != nil {
			t.Fatal(err)
		}
		if rec, _, err := c.relays[0].DecryptForward(sent, p); err != nil || rec {
			t.Fatalf("guard: rec=%v err=%v", rec, err)
		}
		if _, _, err := c.relays[1].DecryptForward(seen, p); !errors.Is(err, ErrTampered) {
			t.Fatalf("sent as %v, the middle accepted it as %v (err=%v)", sent, seen, err)
		}

		c = newTestCircuitFromKeys(t, base.keys)
		p = make([]byte, CellPayloadLen)
		copy(RelayBody(p), testBody(8))
		if _, err := c.relays[2].EncryptBackwardOrigin(sent, p); err != nil {
			t.Fatal(err)
		}
		c.relays[1].EncryptBackward(sent, p)
		c.relays[0].EncryptBackward(sent, p)
		if _, _, err := c.client.DecryptBackward(seen, p); !errors.Is(err, ErrTampered) {
			t.Fatalf("backward, sent as %v, the client accepted it as %v (err=%v)", sent, seen, err)
		}
	}
	if _, err := newTestCircuitFromKeys(t, base.keys).client.EncryptForward(CellCreate, make([]byte, CellPayloadLen), 0); !errors.Is(err, ErrNotRelayCell) {
		t.Fatalf("layers on a CREATE cell: %v", err)
	}
}

// TestHopCannotLearnItsPosition: the filler region of a cell, as the hop
// it is for sees it, looks the same at every position: no block is zero
// (with zeros where no hop wrote, hop t saw exactly t non-zero blocks),
// and no block repeats between cells.
func TestHopCannotLearnItsPosition(t *testing.T) {
	c := newTestCircuit(t, 3, "position")
	const cells = 200
	for target := 0; target < 3; target++ {
		seen := map[[aesBlockLen]byte]bool{}
		for i := 0; i < cells; i++ {
			p := make([]byte, CellPayloadLen)
			copy(RelayBody(p), testBody(i))
			if _, err := c.client.EncryptForward(CellRelay, p, target); err != nil {
				t.Fatal(err)
			}
			for h := 0; h <= target; h++ {
				if rec, _, err := c.relays[h].DecryptForward(CellRelay, p); err != nil || rec != (h == target) {
					t.Fatalf("hop %d: rec=%v err=%v", h, rec, err)
				}
			}
			for b := 0; b < fillerLen/aesBlockLen; b++ {
				var blk [aesBlockLen]byte
				copy(blk[:], p[b*aesBlockLen:])
				if blk == ([aesBlockLen]byte{}) {
					t.Fatalf("hop %d sees filler block %d zero: it can count the hops before it", target, b)
				}
				if seen[blk] {
					t.Fatalf("hop %d sees filler block %d repeat", target, b)
				}
				seen[blk] = true
			}
		}
	}
}
