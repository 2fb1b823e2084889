package keys

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"errors"
	"io"
)

// tls13SignedPrefix starts every TLS 1.3 CertificateVerify input (RFC 8446
// §4.4.3): 64 spaces, then "TLS 1.3, server CertificateVerify" or the client
// form, a zero byte and the transcript hash.
var tls13SignedPrefix = []byte("                                                                TLS 1.3, ")

// derSequence is the first byte of a DER SEQUENCE, which an X.509
// TBSCertificate (RFC 5280 §4.1) is.
const derSequence = 0x30

// TLSSigner returns a crypto.Signer with the identity key for crypto/tls and
// crypto/x509, which need one to self-sign a link certificate and to sign each
// TLS 1.3 handshake.
//
// It signs only what those two produce: an X.509 TBSCertificate (a DER
// SEQUENCE, first byte 0x30) or a TLS 1.3 CertificateVerify input (64 spaces
// and "TLS 1.3, "). Sign's messages start with their label, and labels start
// with "veil ", so no signature from one can be passed off as the other. Every
// other message, and any pre-hashed or Ed25519ctx request, is refused.
func (i *Identity) TLSSigner() crypto.Signer { return tlsSigner{priv: i.priv} }

type tlsSigner struct{ priv ed25519.PrivateKey }

func (s tlsSigner) Public() crypto.PublicKey {
	return ed25519.PublicKey(bytes.Clone(s.priv[ed25519.SeedSize:]))
}

func (s tlsSigner) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != crypto.Hash(0) {
		return nil, errors.New("keys: tls signer: pre-hashed messages are not signed")
	}
	if o, ok := opts.(*ed25519.Options); ok && o.Context != "" {
		return nil, errors.New("keys: tls signer: ed25519ctx is not signed")
	}
	if !(len(msg) > 0 && msg[0] == derSequence) && !bytes.HasPrefix(msg, tls13SignedPrefix) {
		return nil, errors.New("keys: tls signer: message is neither an x509 certificate nor a tls 1.3 certificate verify")
	}
	return ed25519.Sign(s.priv, msg), nil
}
