package onion

import (
	"bytes"
	"io"
	"testing"
)

// Benchmarks for the README's performance section (`make bench`).

// fixedRand returns the same randomness on every Reset, so a benchmark can
// repeat one handshake whose reply it computed once.
type fixedRand struct {
	r    *bytes.Reader
	data []byte
}

func newFixedRand(label string, n int) *fixedRand {
	d := make([]byte, n)
	io.ReadFull(detRand(label), d)
	return &fixedRand{r: bytes.NewReader(d), data: d}
}

func (f *fixedRand) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *fixedRand) Reset()                     { f.r.Reset(f.data) }

// BenchmarkCircuitHandshakeClient is the client's whole CPU cost of the
// three handshakes of a 3-hop circuit (key generation, decapsulation, both
// X25519 operations and key derivation per hop), without the network.
func BenchmarkCircuitHandshakeClient(b *testing.B) {
	type hop struct {
		r     *testRelay
		rnd   *fixedRand
		reply []byte
	}
	var hops [3]hop
	for i := range hops {
		r := newTestRelay(b, "bench-client"+string(rune('0'+i)))
		r.identity.Replay = nil
		rnd := newFixedRand("bench-client-rand"+string(rune('0'+i)), 96)
		hs, err := NewClientHandshake(r.id, r.onionPub, rnd)
		if err != nil {
			b.Fatal(err)
		}
		reply, _, err := r.identity.Respond(hs.Request())
		if err != nil {
			b.Fatal(err)
		}
		hops[i] = hop{r, rnd, reply}
	}
	b.ReportAllocs()
	for b.Loop() {
		for i := range hops {
			h := &hops[i]
			h.rnd.Reset()
			hs, err := NewClientHandshake(h.r.id, h.r.onionPub, h.rnd)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := hs.Finish(h.reply); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkHandshakeRelay is one relay's cost of answering one handshake,
// replay cache included.
func BenchmarkHandshakeRelay(b *testing.B) {
	r := newTestRelay(b, "bench-relay")
	r.identity.Rand = nil
	var reqs [][]byte
	for i := 0; i < 64; i++ {
		hs, err := NewClientHandshake(r.id, r.onionPub, nil)
		if err != nil {
			b.Fatal(err)
		}
		reqs = append(reqs, append([]byte(nil), hs.Request()...))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// Each request is answered many times, so the replay cache is
		// emptied to let it through again; its lookup still runs.
		if i%len(reqs) == 0 {
			r.identity.Replay = NewReplayCache(0)
		}
		if _, _, err := r.identity.Respond(reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkCircuitHandshakeTotal is all the CPU one 3-hop circuit costs,
// client and relays together.
func BenchmarkCircuitHandshakeTotal(b *testing.B) {
	var relays [3]*testRelay
	for i := range relays {
		relays[i] = newTestRelay(b, "bench-total"+string(rune('0'+i)))
		relays[i].identity.Rand = nil
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range relays {
			hs, err := NewClientHandshake(r.id, r.onionPub, nil)
			if err != nil {
				b.Fatal(err)
			}
			reply, _, err := r.identity.Respond(hs.Request())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := hs.Finish(reply); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// The layer benchmarks count MaxRelayData bytes per cell: the data a cell
// carries, not its padding or headers.

func BenchmarkLayerClientForward3Hops(b *testing.B) {
	c := newTestCircuit(b, 3, "bench-layer")
	p := make([]byte, CellPayloadLen)
	b.SetBytes(MaxRelayData)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.client.EncryptForward(CellRelay, p, 2); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLayerClientBackward3Hops(b *testing.B) {
	c := newTestCircuit(b, 3, "bench-layer")
	wire := make([]byte, CellPayloadLen)
	c.relays[2].EncryptBackwardOrigin(CellRelay, wire)
	c.relays[1].EncryptBackward(CellRelay, wire)
	c.relays[0].EncryptBackward(CellRelay, wire)
	p := make([]byte, CellPayloadLen)
	b.SetBytes(MaxRelayData)
	b.ReportAllocs()
	for b.Loop() {
		// Rewind the counters and reuse one cell: the copy is 4 KB of the
		// ~2.5 µs this measures.
		for i := range 3 {
			c.client.hops[i].bwd.counter = 0
		}
		copy(p, wire)
		if _, _, err := c.client.DecryptBackward(CellRelay, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLayerRelayForward(b *testing.B) {
	c := newTestCircuit(b, 3, "bench-layer")
	wire := make([]byte, CellPayloadLen)
	c.client.EncryptForward(CellRelay, wire, 2)
	p := make([]byte, CellPayloadLen)
	b.SetBytes(MaxRelayData)
	b.ReportAllocs()
	for b.Loop() {
		c.relays[0].fwd.counter = 0
		copy(p, wire)
		if _, _, err := c.relays[0].DecryptForward(CellRelay, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLayerRelayBackward(b *testing.B) {
	c := newTestCircuit(b, 3, "bench-layer")
	p := make([]byte, CellPayloadLen)
	b.SetBytes(MaxRelayData)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.relays[1].EncryptBackward(CellRelay, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLayerRelayOriginate(b *testing.B) {
	c := newTestCircuit(b, 3, "bench-layer")
	p := make([]byte, CellPayloadLen)
	b.SetBytes(MaxRelayData)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.relays[2].EncryptBackwardOrigin(CellRelay, p); err != nil {
			b.Fatal(err)
		}
	}
}
