package onion

import (
	"bytes"
	"errors"
	"testing"
)

func TestHandshakeAgrees(t *testing.T) {
	r := newTestRelay(t, "agree")
	ck, rk := handshakeKeys(t, r, detRand("agree/client"))
	if *ck != *rk {
		t.Fatal("client and relay derived different keys")
	}
	if ck.Forward == ck.Backward || ck.ForwardRecognized == ck.BackwardRecognized {
		t.Fatal("directions share key material")
	}
}

func TestHandshakeFreshKeysEachTime(t *testing.T) {
	r := newTestRelay(t, "fresh")
	a, _ := handshakeKeys(t, r, nil)
	b, _ := handshakeKeys(t, r, nil)
	if *a == *b {
		t.Fatal("two handshakes gave the same keys")
	}
}

func TestHandshakeReplayRefused(t *testing.T) {
	r := newTestRelay(t, "replay")
	hs, err := NewClientHandshake(r.id, r.onionPub, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.identity.Respond(hs.Request()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.identity.Respond(hs.Request()); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed request: got %v, want ErrReplay", err)
	}
	// A request that differs only in its ML-KEM key reuses the client's
	// ephemeral X25519 key, and is refused too.
	req := append([]byte(nil), hs.Request()...)
	req[reqEKOff+5] ^= 1
	if _, _, err := r.identity.Respond(req); !errors.Is(err, ErrReplay) {
		t.Fatalf("request with reused X: got %v, want ErrReplay", err)
	}
}

func TestReplayCacheBounded(t *testing.T) {
	c := NewReplayCache(4)
	var key [32]byte
	req := make([]byte, HandshakeLen)
	for i := 0; i < 100; i++ {
		req[reqXOff] = byte(i)
		if !c.Add(key, req) {
			t.Fatalf("fresh request %d refused", i)
		}
		if c.Len() > 8 {
			t.Fatalf("cache holds %d entries, limit is 2 generations of 4", c.Len())
		}
	}
	req[reqXOff] = 99
	if c.Add(key, req) {
		t.Fatal("recent request accepted twice")
	}
}

func TestHandshakeRelayMustKnowOnionKey(t *testing.T) {
	r := newTestRelay(t, "impostor")
	impostor := newTestRelay(t, "impostor-other")
	// The impostor claims r's identity and onion key but holds another
	// private key; it answers with what it can compute.
	impostor.identity.ID = r.id
	impostorKey := mustOnionKey(t, impostor.onionPriv)
	impostor.identity.OnionKey = func([32]byte) (OnionPrivateKey, bool) { return impostorKey, true }
	hs, err := NewClientHandshake(r.id, r.onionPub, nil)
	if err != nil {
		t.Fatal(err)
	}
	reply, _, err := impostor.identity.Respond(hs.Request())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hs.Finish(reply); !errors.Is(err, ErrRelayAuth) {
		t.Fatalf("impostor's reply: got %v, want ErrRelayAuth", err)
	}
}

func TestHandshakeRefusesBadRequests(t *testing.T) {
	r := newTestRelay(t, "badreq")
	hs, _ := NewClientHandshake(r.id, r.onionPub, nil)
	good := hs.Request()
	mutate := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	cases := map[string]struct {
		req  []byte
		want error
	}{
		"wrong relay":   {mutate(func(b []byte) { b[reqIDOff] ^= 1 }), ErrWrongRelay},
		"unknown onion": {mutate(func(b []byte) { b[reqOnionOff] ^= 1 }), ErrUnknownOnionKey},
		"bad type":      {mutate(func(b []byte) { b[1] = 9 }), nil},
		"low-order X":   {mutate(func(b []byte) { clear(b[reqXOff:reqEKOff]) }), nil},
		"short":         {good[:HandshakeLen-1], nil},
		"long":          {append(append([]byte(nil), good...), 0), nil},
	}
	for name, tc := range cases {
		_, _, err := r.identity.Respond(tc.req)
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
}

func TestHandshakeReplyTamperingRefused(t *testing.T) {
	r := newTestRelay(t, "tamper-reply")
	r.identity.Replay = nil
	hs, _ := NewClientHandshake(r.id, r.onionPub, detRand("tamper-reply/client"))
	req := append([]byte(nil), hs.Request()...)
	reply, _, err := r.identity.Respond(req)
	if err != nil {
		t.Fatal(err)
	}
	// Every byte of the reply matters: Y, the ciphertext (ML-KEM's
	// implicit rejection turns a changed one into a wrong secret), the auth
	// value and the zero padding.
	for i := range reply {
		hs, _ := NewClientHandshake(r.id, r.onionPub, detRand("tamper-reply/client"))
		bad := append([]byte(nil), reply...)
		bad[i] ^= 0x80
		if _, err := hs.Finish(bad); err == nil {
			t.Fatalf("reply with byte %d changed was accepted", i)
		}
	}
	if _, err := hs.Finish(reply[:HandshakeLen-1]); err == nil {
		t.Fatal("truncated reply accepted")
	}
}

func TestHandshakeSecretsCleared(t *testing.T) {
	r := newTestRelay(t, "clear")
	hs, _ := NewClientHandshake(r.id, r.onionPub, nil)
	reply, _, _ := r.identity.Respond(hs.Request())
	if _, err := hs.Finish(reply); err != nil {
		t.Fatal(err)
	}
	if !allZero(hs.x[:]) || !allZero(hs.kemSeed[:]) || hs.dk != nil {
		t.Fatal("client secrets survive Finish")
	}
	if _, err := hs.Finish(reply); err == nil {
		t.Fatal("a finished handshake was finished again")
	}
	k := HopKeys{Forward: [32]byte{1}}
	k.Clear()
	if k != (HopKeys{}) {
		t.Fatal("HopKeys.Clear left key material")
	}
}

func TestHandshakeBindsTranscript(t *testing.T) {
	// Two handshakes with the same randomness but different relays must
	// not share keys: the relay ID is in the transcript.
	a := newTestRelay(t, "bind")
	b := newTestRelay(t, "bind")
	b.id[0] ^= 1
	b.identity.ID = b.id
	ka, _ := handshakeKeys(t, a, detRand("bind/client"))
	kb, _ := handshakeKeys(t, b, detRand("bind/client"))
	if bytes.Equal(ka.Forward[:], kb.Forward[:]) {
		t.Fatal("the relay ID does not change the keys")
	}
}

// FuzzRelayRespond feeds arbitrary requests to a relay: it must refuse
// garbage with an error, never panic.
func FuzzRelayRespond(f *testing.F) {
	r := newTestRelay(f, "fuzz-respond")
	r.identity.Replay = nil
	hs, _ := NewClientHandshake(r.id, r.onionPub, detRand("fuzz-respond/client"))
	// A valid request.
	f.Add(hs.Request())
	// A valid request with the wrong relay ID.
	bad := append([]byte(nil), hs.Request()...)
	bad[reqIDOff] ^= 1
	f.Add(bad)
	// An empty request, and a request of the right size that is all zeros
	// (unknown handshake type).
	f.Add([]byte{})
	f.Add(make([]byte, HandshakeLen))
	f.Fuzz(func(t *testing.T, req []byte) {
		reply, keys, err := r.identity.Respond(req)
		if err == nil && (len(reply) != HandshakeLen || keys == nil) {
			t.Fatal("success without a full reply and keys")
		}
	})
}

// FuzzClientFinish feeds arbitrary replies to a client.
func FuzzClientFinish(f *testing.F) {
	r := newTestRelay(f, "fuzz-finish")
	r.identity.Replay = nil
	hs, _ := NewClientHandshake(r.id, r.onionPub, detRand("fuzz-finish/client"))
	reply, _, _ := r.identity.Respond(hs.Request())
	// The real reply, one with its auth value changed, a short one, and
	// one of the right size with non-zero padding.
	f.Add(reply)
	bad := append([]byte(nil), reply...)
	bad[repAuthOff] ^= 1
	f.Add(bad)
	f.Add(reply[:100])
	pad := append([]byte(nil), reply...)
	pad[HandshakeLen-1] = 1
	f.Add(pad)
	f.Fuzz(func(t *testing.T, rep []byte) {
		hs, _ := NewClientHandshake(r.id, r.onionPub, detRand("fuzz-finish/client"))
		keys, err := hs.Finish(rep)
		if err == nil && !bytes.Equal(rep, reply) {
			t.Fatalf("a reply other than the relay's was accepted: keys %v", keys != nil)
		}
	})
}
