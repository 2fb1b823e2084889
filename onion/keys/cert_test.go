package keys

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestOnionCertRoundTrip(t *testing.T) {
	c := testCert(t)
	b := c.Marshal()
	if len(b) != OnionCertLen || OnionCertLen != 145 {
		t.Fatalf("len = %d, OnionCertLen = %d, want 145", len(b), OnionCertLen)
	}
	got, err := ParseOnionCert(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), b) {
		t.Fatal("re-marshal differs")
	}
	if !got.Created.Equal(t0) || !got.Expires.Equal(t0.Add(DefaultRotateEvery+DefaultGrace)) ||
		got.OnionKey != c.OnionKey || !bytes.Equal(got.IdentityKey, c.IdentityKey) {
		t.Fatalf("parsed %+v, want %+v", got, c)
	}
	if got.NodeID() != testIdentity(t, 1).ID() {
		t.Fatal("NodeID is not the signer's")
	}
	if b[0] != 1 || !bytes.Equal(b[1:33], c.IdentityKey) || !bytes.Equal(b[33:65], c.OnionKey[:]) {
		t.Fatal("layout differs from cert.go")
	}
}

func TestOnionCertSecondResolution(t *testing.T) {
	id := testIdentity(t, 1)
	k, err := GenerateOnionKey(id, testRand(2), t0.Add(700*time.Millisecond), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !k.Created().Equal(t0) {
		t.Fatalf("created = %v, want %v", k.Created(), t0)
	}
	if _, err := ParseOnionCert(k.Cert().Marshal()); err != nil {
		t.Fatal(err)
	}
}

func TestParseOnionCertRejectsTruncation(t *testing.T) {
	b := testCert(t).Marshal()
	for n := range len(b) {
		if _, err := ParseOnionCert(b[:n]); err == nil {
			t.Fatalf("accepted %d-byte prefix", n)
		}
	}
	if _, err := ParseOnionCert(append(b, 0)); err == nil {
		t.Fatal("accepted trailing byte")
	}
}

func TestParseOnionCertRejectsBitFlips(t *testing.T) {
	b := testCert(t).Marshal()
	for i := range len(b) * 8 {
		m := bytes.Clone(b)
		m[i/8] ^= 1 << (i % 8)
		if _, err := ParseOnionCert(m); err == nil {
			t.Fatalf("accepted bit %d flipped", i)
		}
	}
}

func TestParseOnionCertRejectsBadFields(t *testing.T) {
	id := testIdentity(t, 1)
	var onionPub [32]byte
	backwards := newOnionCert(id, onionPub, t0, t0.Add(-time.Second))
	if _, err := ParseOnionCert(backwards.Marshal()); err == nil || !strings.Contains(err.Error(), "expires before") {
		t.Fatalf("expires before created: err = %v", err)
	}
	// A correctly signed body with another version must still be refused.
	c := newOnionCert(id, onionPub, t0, t0)
	signed := c.signedPart()
	signed[0] = 2
	b := append(signed, id.Sign(OnionCertLabel, signed)...)
	if _, err := ParseOnionCert(b); err == nil || !strings.Contains(err.Error(), "version") {
		t.Fatalf("version 2: err = %v", err)
	}
}

func TestOnionCertValid(t *testing.T) {
	c := testCert(t)
	for _, tc := range []struct {
		at   time.Time
		want string // "" for valid
	}{
		{t0, ""},
		{t0.Add(-CertClockSkew), ""},
		{t0.Add(-CertClockSkew - time.Second), "not valid before"},
		{c.Expires, ""},
		{c.Expires.Add(time.Second), "expired"},
	} {
		err := c.Valid(tc.at)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Valid(%v) = %v, want %q", tc.at, err, tc.want)
		}
	}
	forged := *c
	forged.Expires = forged.Expires.Add(time.Hour)
	if err := forged.Valid(t0); err == nil {
		t.Error("Valid accepted a cert whose fields were changed after signing")
	}
	forged = *c
	forged.IdentityKey = forged.IdentityKey[:16]
	if err := forged.Valid(t0); err == nil {
		t.Error("Valid accepted a short identity key")
	}
}
