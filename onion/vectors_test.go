package onion

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// updateVectors rewrites testdata/onion from the generator below; `make
// vectors` runs it. Regenerating must change nothing unless the protocol
// changed, and then SPEC.md changes in the same commit.
var updateVectors = flag.Bool("update", false, "rewrite testdata/onion vectors")

var vectorsPath = filepath.Join("..", "testdata", "onion", "vectors.json")

type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }
func (h *hexBytes) UnmarshalText(b []byte) error {
	v, err := hex.DecodeString(string(b))
	*h = v
	return err
}

type handshakeVector struct {
	Hop               int      `json:"hop"`
	RelayID           hexBytes `json:"relay_id"`
	OnionPrivate      hexBytes `json:"onion_private"`
	OnionPublic       hexBytes `json:"onion_public"`
	ClientRandom      hexBytes `json:"client_random"` // x (32) then ML-KEM seed d||z (64)
	RelayRandom       hexBytes `json:"relay_random"`  // y (32) then encapsulation seed m (32)
	Request           hexBytes `json:"request"`
	Reply             hexBytes `json:"reply"`
	ForwardKey        hexBytes `json:"forward_key"`
	BackwardKey       hexBytes `json:"backward_key"`
	ForwardRecognized hexBytes `json:"forward_recognized"`
	BackwardRecogn    hexBytes `json:"backward_recognized"`
}

type cellVector struct {
	Direction string   `json:"direction"` // "forward": client to hop; "backward": hop to client
	Command   CellCmd  `json:"command"`   // the cell command, every layer's associated data
	Hop       int      `json:"hop"`       // target (forward) or origin (backward)
	Counter   []uint64 `json:"counters"`  // each hop's counter in that direction before the cell
	Body      hexBytes `json:"body"`      // the RelayBodyLen-byte relay body
	Wire      hexBytes `json:"wire"`      // the CellPayloadLen bytes between client and guard
	Tag       hexBytes `json:"endpoint_tag"`
}

type vectorFile struct {
	Comment    string            `json:"comment"`
	CellSize   int               `json:"cell_size"`
	Handshakes []handshakeVector `json:"handshakes"`
	Cells      []cellVector      `json:"cells"`
}

// recordingReader passes reads through and keeps what it returned.
type recordingReader struct {
	r   interface{ Read([]byte) (int, error) }
	got []byte
}

func (rr *recordingReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	rr.got = append(rr.got, p[:n]...)
	return n, err
}

func generateVectors(t *testing.T) *vectorFile {
	vf := &vectorFile{
		Comment: fmt.Sprintf("veil onion protocol v%d known answers; see testdata/README.md and onion/SPEC.md. ", ProtocolVersion) +
			"Randomness is SHAKE-128 of the labels 'vectors/hopN/...'; the client's filler padding is ChaCha8 " +
			"seeded with the 32 bytes 'vectors/padding' zero-padded.",
		CellSize: CellSize,
	}
	var keys []*HopKeys
	for i := 0; i < 3; i++ {
		label := fmt.Sprintf("vectors/hop%d", i)
		r := newTestRelay(t, label)
		r.identity.Replay = nil
		relayRand := &recordingReader{r: r.identity.Rand}
		r.identity.Rand = relayRand
		clientRand := &recordingReader{r: detRand(label + "/client")}
		hs, err := NewClientHandshake(r.id, r.onionPub, clientRand)
		if err != nil {
			t.Fatal(err)
		}
		req := append([]byte(nil), hs.Request()...)
		reply, rk, err := r.identity.Respond(req)
		if err != nil {
			t.Fatal(err)
		}
		ck, err := hs.Finish(reply)
		if err != nil || *ck != *rk {
			t.Fatalf("hop %d: handshake failed: %v", i, err)
		}
		keys = append(keys, ck)
		vf.Handshakes = append(vf.Handshakes, handshakeVector{
			Hop: i, RelayID: r.id[:], OnionPrivate: r.onionPriv[:], OnionPublic: r.onionPub[:],
			ClientRandom: clientRand.got, RelayRandom: relayRand.got,
			Request: req, Reply: reply,
			ForwardKey: ck.Forward[:], BackwardKey: ck.Backward[:],
			ForwardRecognized: ck.ForwardRecognized[:], BackwardRecogn: ck.BackwardRecognized[:],
		})
	}

	c := newTestCircuitFromKeys(t, keys)
	var padSeed [32]byte
	copy(padSeed[:], "vectors/padding")
	c.client.pad = rand.NewChaCha8(padSeed)
	counters := func(back bool) []uint64 {
		var out []uint64
		for i := 0; i < c.client.n; i++ {
			if back {
				out = append(out, c.client.hops[i].bwd.counter)
			} else {
				out = append(out, c.client.hops[i].fwd.counter)
			}
		}
		return out
	}
	// Forward to each hop, then back from each hop, twice, so that the
	// counters differ between hops; forward cells are RELAY_EARLY in the
	// first round and RELAY in the second.
	for round := 0; round < 2; round++ {
		fwdCmd := []CellCmd{CellRelayEarly, CellRelay}[round]
		for hop := 0; hop < 3; hop++ {
			body := make([]byte, RelayBodyLen)
			copy(body, fmt.Sprintf("forward round %d to hop %d", round, hop))
			ctr := counters(false)
			p := make([]byte, CellPayloadLen)
			copy(RelayBody(p), body)
			tag, err := c.client.EncryptForward(fwdCmd, p, hop)
			if err != nil {
				t.Fatal(err)
			}
			wire := append([]byte(nil), p...)
			for i := 0; i <= hop; i++ {
				if rec, _, err := c.relays[i].DecryptForward(fwdCmd, p); err != nil || rec != (i == hop) {
					t.Fatalf("forward vector: hop %d: rec=%v err=%v", i, rec, err)
				}
			}
			vf.Cells = append(vf.Cells, cellVector{"forward", fwdCmd, hop, ctr, body, wire, tag[:]})
		}
		for hop := 0; hop < 3; hop++ {
			body := make([]byte, RelayBodyLen)
			copy(body, fmt.Sprintf("backward round %d from hop %d", round, hop))
			ctr := counters(true)
			p := make([]byte, CellPayloadLen)
			copy(RelayBody(p), body)
			tag, err := c.relays[hop].EncryptBackwardOrigin(CellRelay, p)
			if err != nil {
				t.Fatal(err)
			}
			for i := hop - 1; i >= 0; i-- {
				c.relays[i].EncryptBackward(CellRelay, p)
			}
			wire := append([]byte(nil), p...)
			if o, _, err := c.client.DecryptBackward(CellRelay, p); err != nil || o != hop {
				t.Fatalf("backward vector: origin %d err %v", o, err)
			}
			vf.Cells = append(vf.Cells, cellVector{"backward", CellRelay, hop, ctr, body, wire, tag[:]})
		}
	}
	return vf
}

func TestVectors(t *testing.T) {
	got, err := json.MarshalIndent(generateVectors(t), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *updateVectors {
		if err := os.MkdirAll(filepath.Dir(vectorsPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (run `make vectors` to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("regenerating the vectors changes them: the protocol changed; " +
			"if that was meant, update SPEC.md and run `make vectors`")
	}
}

// TestVectorsDecode checks the stored vectors independently of the
// generator: each relay's layer and the client's, built from the stored
// keys alone, turn the stored wire bytes back into the stored bodies.
func TestVectorsDecode(t *testing.T) {
	raw, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(raw, &vf); err != nil {
		t.Fatal(err)
	}
	if vf.CellSize != CellSize {
		t.Fatalf("vectors are for %d-byte cells", vf.CellSize)
	}
	var keys []*HopKeys
	for _, h := range vf.Handshakes {
		k := new(HopKeys)
		copy(k.Forward[:], h.ForwardKey)
		copy(k.Backward[:], h.BackwardKey)
		copy(k.ForwardRecognized[:], h.ForwardRecognized)
		copy(k.BackwardRecognized[:], h.BackwardRecogn)
		keys = append(keys, k)

		// The relay, given the stored request and randomness, answers
		// with the stored reply.
		var id, priv, pub [32]byte
		copy(id[:], h.RelayID)
		copy(priv[:], h.OnionPrivate)
		copy(pub[:], h.OnionPublic)
		onionKey := mustOnionKey(t, priv)
		ri := &RelayIdentity{ID: id, Rand: bytes.NewReader(h.RelayRandom),
			OnionKey: func(p [32]byte) (OnionPrivateKey, bool) { return onionKey, p == pub }}
		reply, rk, err := ri.Respond(h.Request)
		if err != nil || !bytes.Equal(reply, h.Reply) || *rk != *k {
			t.Fatalf("hop %d: relay does not reproduce the stored reply and keys (err %v)", h.Hop, err)
		}
		cs, err := NewClientHandshake(id, pub, bytes.NewReader(h.ClientRandom))
		if err != nil || !bytes.Equal(cs.Request(), h.Request) {
			t.Fatalf("hop %d: client does not reproduce the stored request", h.Hop)
		}
	}
	c := newTestCircuitFromKeys(t, keys)
	for i, cv := range vf.Cells {
		p := append([]byte(nil), cv.Wire...)
		if cv.Direction == "forward" {
			// The command is bound: under the other one, the first
			// hop refuses the cell. (A throwaway layer, since a
			// refused cell still uses its counter.)
			flipped := append([]byte(nil), cv.Wire...)
			other := CellRelay + CellRelayEarly - cv.Command
			if _, _, err := newTestCircuitFromKeys(t, keys).relays[0].DecryptForward(other, flipped); cv.Counter[0] == 0 && !errors.Is(err, ErrTampered) {
				t.Fatalf("cell %d: accepted as %v: %v", i, other, err)
			}
			for h := 0; h <= cv.Hop; h++ {
				if rec, _, err := c.relays[h].DecryptForward(cv.Command, p); err != nil || rec != (h == cv.Hop) {
					t.Fatalf("cell %d: hop %d: rec=%v err=%v", i, h, rec, err)
				}
			}
		} else {
			o, tag, err := c.client.DecryptBackward(cv.Command, p)
			if err != nil || o != cv.Hop || !bytes.Equal(tag[:], cv.Tag) {
				t.Fatalf("cell %d: origin %d err %v", i, o, err)
			}
		}
		if !bytes.Equal(RelayBody(p), cv.Body) {
			t.Fatalf("cell %d: body differs", i)
		}
	}
}
