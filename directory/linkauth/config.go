package linkauth

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"

	"veil/onion/keys"
)

// ALPN is the application protocol of a veil link. Both sides require it.
// A new link protocol gets a new name ("veil/2"); names are append-only.
const ALPN = "veil/1"

// linkCurve is the only key exchange a link uses; see the package doc.
const linkCurve = tls.X25519MLKEM768

var (
	// ErrIdentityMismatch: the peer proved an identity other than the one
	// expected. The error wrapping it names both short node IDs.
	ErrIdentityMismatch = errors.New("linkauth: identity mismatch")
	// ErrNoCertificate: the peer presented no certificate where one is needed.
	ErrNoCertificate = errors.New("linkauth: peer presented no certificate")
)

// ClientAuthMode says whether a server requires connecting peers to prove a
// node identity. Values are append-only.
type ClientAuthMode int

const (
	// AnonymousClients requests a certificate but does not require one: a
	// client presents none and stays anonymous, a relay presents its own and
	// gets it verified. This is what a relay's OR port uses.
	AnonymousClients ClientAuthMode = iota + 1
	// RequireIdentity refuses peers that present no valid certificate.
	RequireIdentity
)

func (m ClientAuthMode) String() string {
	switch m {
	case AnonymousClients:
		return "anonymous clients"
	case RequireIdentity:
		return "require identity"
	}
	return fmt.Sprintf("ClientAuthMode(%d)", int(m))
}

// baseConfig holds what both ends share.
func baseConfig() *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		CurvePreferences:       []tls.CurveID{linkCurve},
		NextProtos:             []string{ALPN},
		SessionTicketsDisabled: true,
	}
}

// ServerConfig returns the TLS config for accepting links as identity id.
// It presents id's certificate and verifies the peer's, if any, per mode;
// PeerID tells who connected once the handshake is done. The caller should
// bound the handshake with a deadline or HandshakeContext.
func ServerConfig(id *keys.Identity, mode ClientAuthMode) (*tls.Config, error) {
	if id == nil {
		return nil, errors.New("linkauth: server config: no identity")
	}
	cfg := baseConfig()
	switch mode {
	case AnonymousClients:
		cfg.ClientAuth = tls.RequestClientCert
	case RequireIdentity:
		cfg.ClientAuth = tls.RequireAnyClientCert
	default:
		return nil, fmt.Errorf("linkauth: server config: unknown client auth mode %d", int(mode))
	}
	cert, err := newCertificate(id, rand.Reader)
	if err != nil {
		return nil, err
	}
	cfg.Certificates = []tls.Certificate{cert}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := checkParams(cs); err != nil {
			return err
		}
		if len(cs.PeerCertificates) == 0 && mode == AnonymousClients {
			return nil
		}
		_, err := verifyPeer(cs.PeerCertificates)
		return err
	}
	return cfg, nil
}

// ClientConfig returns the TLS config for dialling the node expect. The
// handshake fails unless the server proves identity expect (ErrIdentityMismatch
// otherwise). With own nil the client presents no certificate and stays
// anonymous; otherwise it presents own's, so both ends are authenticated.
//
// InsecureSkipVerify only turns off Web PKI chain building, which means
// nothing here: VerifyConnection does the whole check.
func ClientConfig(expect keys.NodeID, own *keys.Identity) (*tls.Config, error) {
	if expect == (keys.NodeID{}) {
		return nil, errors.New("linkauth: client config: no expected node id")
	}
	cfg := baseConfig()
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := checkParams(cs); err != nil {
			return err
		}
		got, err := verifyPeer(cs.PeerCertificates)
		if err != nil {
			return err
		}
		if got != expect {
			return fmt.Errorf("%w: want %s, got %s", ErrIdentityMismatch, expect.Short(), got.Short())
		}
		return nil
	}
	// An empty certificate means "send none"; GetClientCertificate is used
	// rather than Certificates so crypto/tls never second-guesses the choice.
	var cert tls.Certificate
	if own != nil {
		var err error
		if cert, err = newCertificate(own, rand.Reader); err != nil {
			return nil, err
		}
	}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &cert, nil
	}
	return cfg, nil
}

// checkParams re-checks, after negotiation, what the configs already insist
// on, so a config altered by a caller cannot quietly weaken a link.
func checkParams(cs tls.ConnectionState) error {
	if cs.Version != tls.VersionTLS13 {
		return fmt.Errorf("linkauth: negotiated %s, want TLS 1.3", tls.VersionName(cs.Version))
	}
	if cs.CurveID != linkCurve {
		return fmt.Errorf("linkauth: negotiated key exchange %v, want %v", cs.CurveID, linkCurve)
	}
	if cs.NegotiatedProtocol != ALPN {
		return fmt.Errorf("linkauth: negotiated protocol %q, want %q", cs.NegotiatedProtocol, ALPN)
	}
	if cs.DidResume {
		return errors.New("linkauth: session resumed, want a full handshake")
	}
	return nil
}

// PeerID returns the node ID the peer of a completed handshake proved. ok is
// false, with no error, when the peer presented no certificate: an anonymous
// client. Call it on connections made with ServerConfig or ClientConfig.
func PeerID(cs tls.ConnectionState) (id keys.NodeID, ok bool, err error) {
	if !cs.HandshakeComplete {
		return keys.NodeID{}, false, errors.New("linkauth: peer id: handshake not complete")
	}
	if len(cs.PeerCertificates) == 0 {
		return keys.NodeID{}, false, nil
	}
	if id, err = verifyPeer(cs.PeerCertificates); err != nil {
		return keys.NodeID{}, false, err
	}
	return id, true, nil
}
