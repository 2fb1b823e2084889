package onion

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// FuzzLayerDecrypt feeds arbitrary payloads to the layer crypto of a
// three-hop circuit keyed by real handshakes, and checks genuine cells
// against single changes:
//
//   - an arbitrary payload (any length, any cell command) is refused by
//     RelayLayer.DecryptForward at every hop and by
//     ClientCrypto.DecryptBackward, without panic; a payload that failed
//     authentication is zeroed, one refused before any decryption
//     (ErrUnrecognized, a command that is not RELAY or RELAY_EARLY, a wrong
//     length) is left as it was: no partly decrypted byte is ever left in
//     it;
//   - a genuine forward cell (EncryptForward, body from the input) passes
//     every hop before its target unrecognized and is recognized by the
//     target with its body and tag intact; a genuine backward cell
//     (EncryptBackwardOrigin, then EncryptBackward at every hop before the
//     origin) is found at its origin with its body and tag intact;
//   - the next genuine cell each way, with one byte changed or its command
//     flipped between RELAY and RELAY_EARLY as it passes a chosen hop, is
//     refused: forward by that hop with ErrTampered, backward by the client
//     with ErrTampered or ErrUnrecognized (issue 13 items 2 and 7). The
//     one exception is a byte of the first block a relay passes back,
//     which the next relay towards the client drops (SPEC.md §5.3): that
//     change never arrives, and the cell must arrive intact.
//
// sel picks the hop (bits 0-1, mod 3: the target, origin, and hop fed the
// arbitrary payload), the hop where the change happens (bits 2-3, mod
// hop+1), RELAY_EARLY (bit 4), a command flip instead of a byte change
// (bit 5) and, for the arbitrary payload only, delta as its cell command
// (bit 6). pos and delta place the changed byte and what it is XORed
// with (0 counts as 1).
func FuzzLayerDecrypt(f *testing.F) {
	keys := newTestCircuit(f, layerFuzzHops, "fuzz layer").keys
	long := bytes.Repeat([]byte{0xa5}, CellPayloadLen)
	f.Add(make([]byte, CellPayloadLen), uint8(0), uint16(0), byte(1))             // zeros at the guard; the change in the first byte
	f.Add(long, uint8(2|1<<2), uint16(CellPayloadLen-1), byte(0x80))              // the exit's cell, changed in its tag at the middle
	f.Add(long, uint8(2|2<<2|1<<4), uint16(RelayPlainLen/2), byte(0xff))          // RELAY_EARLY, changed at the exit
	f.Add(testBody(3), uint8(1|1<<5), uint16(0), byte(0))                         // RELAY turned into RELAY_EARLY at the middle
	f.Add(testBody(4), uint8(2|1<<4|1<<5), uint16(0), byte(0))                    // RELAY_EARLY turned into RELAY at the guard
	f.Add(long, uint8(1|1<<6), uint16(recognizedOff), byte(CellCreate))           // a CREATE payload handed to the layers
	f.Add(long[:CellPayloadLen-1], uint8(0), uint16(recognizedOff+1), byte(1))    // one byte short
	f.Add(append(bytes.Clone(long), 0), uint8(2), uint16(relayBodyOff), byte(1))  // one byte long
	f.Add([]byte{}, uint8(2|2<<2), uint16(recognizedOff-aesBlockLen), byte(0x01)) // empty
	f.Fuzz(func(t *testing.T, payload []byte, sel uint8, pos uint16, delta byte) {
		hop := int(sel&3) % layerFuzzHops
		at := int(sel>>2&3) % (hop + 1)
		cmd, other := CellRelay, CellRelayEarly
		if sel&(1<<4) != 0 {
			cmd, other = other, cmd
		}
		flipCmd := sel&(1<<5) != 0
		arbitraryCmd := cmd
		if sel&(1<<6) != 0 {
			arbitraryCmd = CellCmd(delta)
		}
		if delta == 0 {
			delta = 1
		}

		// Arbitrary payloads.
		tc := newTestCircuitFromKeys(t, keys)
		if len(payload) != CellPayloadLen {
			p := bytes.Clone(payload)
			if _, _, err := tc.relays[hop].DecryptForward(arbitraryCmd, p); err == nil {
				t.Fatalf("hop %d took a %d-byte forward payload", hop, len(p))
			}
			if _, _, err := tc.client.DecryptBackward(arbitraryCmd, p); err == nil {
				t.Fatalf("the client took a %d-byte backward payload", len(p))
			}
			if !bytes.Equal(p, payload) {
				t.Fatalf("a %d-byte payload was changed by refusing it", len(p))
			}
			payload = append(payload, make([]byte, max(0, CellPayloadLen-len(payload)))...)[:CellPayloadLen]
		}
		p := bytes.Clone(payload)
		_, _, err := tc.relays[hop].DecryptForward(arbitraryCmd, p)
		checkRefused(t, fmt.Sprintf("an arbitrary forward payload at hop %d", hop), arbitraryCmd, err, p, payload, ErrTampered)
		p = bytes.Clone(payload)
		_, _, err = tc.client.DecryptBackward(arbitraryCmd, p)
		checkRefused(t, "an arbitrary backward payload", arbitraryCmd, err, p, payload, ErrTampered, ErrUnrecognized)

		// Genuine cells, then the next one changed at hop at.
		tc = newTestCircuitFromKeys(t, keys)
		body := payload[:RelayBodyLen]
		p = make([]byte, CellPayloadLen)
		copy(RelayBody(p), body)
		tag, err := tc.client.EncryptForward(cmd, p, hop)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i <= hop; i++ {
			rec, got, err := tc.relays[i].DecryptForward(cmd, p)
			if err != nil || rec != (i == hop) {
				t.Fatalf("genuine forward cell for hop %d: at hop %d recognized %v, %v", hop, i, rec, err)
			}
			if i == hop && (!bytes.Equal(RelayBody(p), body) || got != tag) {
				t.Fatalf("genuine forward cell for hop %d: body or tag differ", hop)
			}
		}
		p = make([]byte, CellPayloadLen)
		copy(RelayBody(p), body)
		if _, err := tc.client.EncryptForward(cmd, p, hop); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < at; i++ {
			if rec, _, err := tc.relays[i].DecryptForward(cmd, p); err != nil || rec {
				t.Fatalf("second forward cell for hop %d: at hop %d recognized %v, %v", hop, i, rec, err)
			}
		}
		seen := cmd
		what := fmt.Sprintf("forward cell for hop %d with its command flipped before hop %d", hop, at)
		if flipCmd {
			seen = other
		} else {
			p[int(pos)%CellPayloadLen] ^= delta
			what = fmt.Sprintf("forward cell for hop %d changed at byte %d before hop %d", hop, int(pos)%CellPayloadLen, at)
		}
		changed := bytes.Clone(p)
		_, _, err = tc.relays[at].DecryptForward(seen, p)
		checkRefused(t, what, seen, err, p, changed, ErrTampered)

		p = make([]byte, CellPayloadLen)
		copy(RelayBody(p), body)
		tag, err = tc.relays[hop].EncryptBackwardOrigin(cmd, p)
		if err != nil {
			t.Fatal(err)
		}
		for j := hop - 1; j >= 0; j-- {
			if err := tc.relays[j].EncryptBackward(cmd, p); err != nil {
				t.Fatal(err)
			}
		}
		origin, got, err := tc.client.DecryptBackward(cmd, p)
		if err != nil || origin != hop || !bytes.Equal(RelayBody(p), body) || got != tag {
			t.Fatalf("genuine backward cell from hop %d: origin %d, %v; body or tag differ: %v",
				hop, origin, err, !bytes.Equal(RelayBody(p), body) || got != tag)
		}
		p = make([]byte, CellPayloadLen)
		copy(RelayBody(p), body)
		if _, err := tc.relays[hop].EncryptBackwardOrigin(cmd, p); err != nil {
			t.Fatal(err)
		}
		seen = cmd
		for j := hop - 1; j >= -1; j-- {
			if j == at-1 { // hop at has added its layer: change the cell
				if flipCmd {
					seen = other
				} else {
					p[int(pos)%CellPayloadLen] ^= delta
				}
			}
			if j >= 0 {
				if err := tc.relays[j].EncryptBackward(seen, p); err != nil {
					t.Fatal(err)
				}
			}
		}
		what = fmt.Sprintf("backward cell from hop %d changed at byte %d after hop %d", hop, int(pos)%CellPayloadLen, at)
		if flipCmd {
			what = fmt.Sprintf("backward cell from hop %d with its command flipped after hop %d", hop, at)
		}
		changed = bytes.Clone(p)
		origin, _, err = tc.client.DecryptBackward(seen, p)
		if at > 0 && !flipCmd && int(pos)%CellPayloadLen < aesBlockLen {
			// Hop at-1 drops the first block of what it receives (SPEC.md
			// §5.3): the change is erased on the way, never delivered.
			if err != nil || origin != hop || !bytes.Equal(RelayBody(p), body) {
				t.Fatalf("%s, in the block hop %d drops: origin %d, %v; body differs: %v",
					what, at-1, origin, err, !bytes.Equal(RelayBody(p), body))
			}
			return
		}
		checkRefused(t, what, seen, err, p, changed, ErrTampered, ErrUnrecognized)
	})
}

const layerFuzzHops = 3

// checkRefused fails the test unless err refuses the payload p, which
// was in before decryption: with one of the errors want, or with
// ErrNotRelayCell when cmd is neither RELAY nor RELAY_EARLY. A payload that
// failed authentication (ErrTampered) must be all zeros; one refused
// without decryption must be as it was.
func checkRefused(t *testing.T, what string, cmd CellCmd, err error, p, in []byte, want ...error) {
	t.Helper()
	if cmd != CellRelay && cmd != CellRelayEarly {
		want = []error{ErrNotRelayCell}
	}
	ok := false
	for _, w := range want {
		ok = ok || errors.Is(err, w)
	}
	switch {
	case err == nil:
		t.Fatalf("%s (%v) was accepted", what, cmd)
	case !ok:
		t.Fatalf("%s (%v): %v, want one of %v", what, cmd, err, want)
	case errors.Is(err, ErrTampered) && !allZero(p):
		t.Fatalf("%s (%v): %v, but the payload was not zeroed", what, cmd, err)
	case !errors.Is(err, ErrTampered) && !bytes.Equal(p, in):
		t.Fatalf("%s (%v): %v, and the payload was changed", what, cmd, err)
	}
}
