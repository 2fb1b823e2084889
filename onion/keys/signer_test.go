package keys

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestTLSSignerCertificate(t *testing.T) {
	id := testIdentity(t, 1)
	s := id.TLSSigner()
	if pub, ok := s.Public().(ed25519.PublicKey); !ok || !bytes.Equal(pub, id.Public()) {
		t.Fatalf("Public() = %v, want the identity key", s.Public())
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: id.ID().String()},
		NotBefore:    t0,
		NotAfter:     t0.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.Public(), s)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckSignature(x509.PureEd25519, c.RawTBSCertificate, c.Signature); err != nil {
		t.Fatal(err)
	}
}

func TestTLSSignerCertificateVerify(t *testing.T) {
	id := testIdentity(t, 1)
	msg := append([]byte(strings.Repeat(" ", 64)+"TLS 1.3, server CertificateVerify\x00"), make([]byte, 32)...)
	sig, err := id.TLSSigner().Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(id.Public(), msg, sig) {
		t.Fatal("signature does not verify")
	}
}

func TestTLSSignerRefuses(t *testing.T) {
	s := testIdentity(t, 1).TLSSigner()
	labelled, _ := signedMessage(OnionCertLabel, make([]byte, onionCertSignedLen))
	digest := sha512.Sum512([]byte{0x30})
	for name, c := range map[string]struct {
		msg  []byte
		opts crypto.SignerOpts
	}{
		"labelled message": {labelled, crypto.Hash(0)},
		"empty":            {nil, crypto.Hash(0)},
		"63 spaces":        {[]byte(strings.Repeat(" ", 63) + "TLS 1.3, "), crypto.Hash(0)},
		"pre-hashed":       {digest[:], crypto.SHA512},
		"ed25519ctx":       {[]byte{0x30}, &ed25519.Options{Context: "x"}},
	} {
		if sig, err := s.Sign(rand.Reader, c.msg, c.opts); err == nil {
			t.Errorf("%s: signed (%x), want refusal", name, sig)
		}
	}
}
