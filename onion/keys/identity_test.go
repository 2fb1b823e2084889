package keys

import (
	"bytes"
	"testing"
)

func TestGenerateIdentityDeterministic(t *testing.T) {
	a, b := testIdentity(t, 7), testIdentity(t, 7)
	if a.ID() != b.ID() || !bytes.Equal(a.Public(), b.Public()) {
		t.Fatal("same rand gave different identities")
	}
	if testIdentity(t, 8).ID() == a.ID() {
		t.Fatal("different rand gave the same identity")
	}
}

func TestSignVerifyDomainSeparation(t *testing.T) {
	id := testIdentity(t, 1)
	sig := id.Sign("veil test a", []byte("msg"))
	if !Verify(id.Public(), "veil test a", []byte("msg"), sig) {
		t.Fatal("valid signature rejected")
	}
	for name, c := range map[string]struct {
		label, msg string
	}{
		"other label":         {"veil test b", "msg"},
		"label/msg boundary":  {"veil test amsg", ""},
		"other message":       {"veil test a", "msh"},
		"bare msg, no label":  {"", "veil test a\x00msg"},
		"zero byte in label":  {"veil test a\x00msg", ""},
		"empty label and msg": {"", ""},
	} {
		if Verify(id.Public(), c.label, []byte(c.msg), sig) {
			t.Errorf("%s: signature verified", name)
		}
	}
	if Verify(testIdentity(t, 2).Public(), "veil test a", []byte("msg"), sig) {
		t.Error("signature verified under another key")
	}
}

func TestVerifyMalformedInputs(t *testing.T) {
	id := testIdentity(t, 1)
	sig := id.Sign("l", nil)
	// ed25519.Verify panics on a short key; Verify must not.
	for _, pub := range [][]byte{nil, id.Public()[:31], append(id.Public(), 0)} {
		if Verify(pub, "l", nil, sig) {
			t.Errorf("verified with %d-byte key", len(pub))
		}
	}
	if Verify(id.Public(), "l", nil, sig[:63]) {
		t.Error("verified a short signature")
	}
}

func TestSignPanicsOnZeroInLabel(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Sign accepted a label with a zero byte")
		}
	}()
	testIdentity(t, 1).Sign("bad\x00label", nil)
}
