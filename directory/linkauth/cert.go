package linkauth

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"time"

	"veil/onion/keys"
)

// serialBytes is the size of a certificate serial: 128 random bits, with the
// top bit cleared so the DER integer stays positive and within RFC 5280's 20
// octets.
const serialBytes = 16

// The fixed validity window of every link certificate; see the package doc
// for why it is not "now" and why nobody checks it.
var (
	certNotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	certNotAfter  = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC) // RFC 5280 §4.1.2.5
)

// newCertificate makes id's self-signed link certificate. rand supplies the
// serial only: Ed25519 signatures are deterministic.
func newCertificate(id *keys.Identity, rand io.Reader) (tls.Certificate, error) {
	var sb [serialBytes]byte
	if _, err := io.ReadFull(rand, sb[:]); err != nil {
		return tls.Certificate{}, fmt.Errorf("linkauth: certificate serial: %w", err)
	}
	sb[0] &= 0x7f
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(sb[:]),
		Subject:               pkix.Name{CommonName: id.ID().String()},
		NotBefore:             certNotBefore,
		NotAfter:              certNotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	signer := id.TLSSigner()
	der, err := x509.CreateCertificate(rand, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("linkauth: create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic("linkauth: internal error: own certificate does not parse: " + err.Error())
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: signer, Leaf: leaf}, nil
}

// verifyPeer checks a peer's certificate chain as the package doc describes
// and returns the node ID it names. It does not compare that ID with any
// expectation. crypto/tls has already parsed the certificates and, by the
// time the handshake completes, checked CertificateVerify with the leaf key.
func verifyPeer(certs []*x509.Certificate) (keys.NodeID, error) {
	if len(certs) == 0 {
		return keys.NodeID{}, ErrNoCertificate
	}
	if len(certs) != 1 {
		return keys.NodeID{}, fmt.Errorf("linkauth: peer sent %d certificates, want 1", len(certs))
	}
	c := certs[0]
	pub, ok := c.PublicKey.(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return keys.NodeID{}, fmt.Errorf("linkauth: peer certificate key is %v, not Ed25519", c.PublicKeyAlgorithm)
	}
	if c.SignatureAlgorithm != x509.PureEd25519 {
		return keys.NodeID{}, fmt.Errorf("linkauth: peer certificate is signed with %v, not Ed25519", c.SignatureAlgorithm)
	}
	if err := c.CheckSignature(x509.PureEd25519, c.RawTBSCertificate, c.Signature); err != nil {
		return keys.NodeID{}, fmt.Errorf("linkauth: peer certificate is not self-signed by its key: %w", err)
	}
	return keys.NodeIDFromIdentity(pub), nil
}
