// Package linkauth is TLS 1.3 link authentication by node identity: the
// certificate a node presents, and the checks that bind a connection to a
// node ID.
//
// It lives under directory/ because the seed checks a relay's OR port with it
// (Probe) and relays use it for their links (ServerConfig, ClientConfig, Dial);
// imports run cmd → shard → relay → directory → onion.
//
// # Link authentication (spec)
//
// Certificate. A node presents one X.509 certificate, self-signed with its
// Ed25519 identity key: the certificate's public key is the identity key, so
// the peer's node ID is keys.NodeIDFromIdentity of that key. The subject
// CommonName is the full node ID, for people reading packet captures; it is
// informational and never checked. The serial is 128 random bits. A node makes
// a fresh certificate whenever it builds a config, so nothing is stored.
//
// Validity. The window is fixed, 2025-01-01 to 9999-12-31T23:59:59Z (RFC 5280
// §4.1.2.5's "no well-defined expiration"), and neither side checks it. What
// authenticates a peer is the TLS 1.3 CertificateVerify: a signature by the
// identity key over this handshake's transcript, which no old certificate or
// recorded handshake can stand in for. A validity window would add nothing but
// a way for clock skew to break links, and a "now" in it would tell everyone
// who connects when the node last started.
//
// Checks, by whichever side verifies a certificate: exactly one certificate;
// its key is Ed25519; its signature algorithm is Ed25519 and the signature
// verifies under its own key (a sanity check that it came from this package;
// CertificateVerify is the proof of possession); and, on the dialling side,
// its node ID equals the one expected from the consensus, or the handshake
// fails with ErrIdentityMismatch naming both short IDs.
//
// TLS parameters. TLS 1.3 only. Key exchange X25519MLKEM768 only: every veil
// node runs this package on a Go that has it, so there are no legacy peers to
// serve, and refusing classical-only peers means no link is ever recordable
// now and decryptable by a future quantum computer. A peer without it fails
// the handshake ("tls: no key exchanges supported by both client and
// server"), and both sides also check the
// negotiated group after the fact (ConnectionState.CurveID). A Go built or run
// with GODEBUG=tlsmlkem=0 cannot make links at all, loudly, rather than
// quietly falling back. ALPN "veil/1" is required on both sides, so a veil
// link is never mistaken for another TLS protocol on the same port. No SNI is
// sent. Session tickets are off on both sides: resumption would skip the
// certificate and its CertificateVerify on the resumed connection and would
// let an observer with the ticket link two connections of one client.
//
// Client authentication. A relay accepts links from anonymous clients and
// from other relays on one port (AnonymousClients): it requests a certificate
// but does not require one. A client sends none and stays anonymous (PeerID
// reports ok=false); a relay dialling another relay sends its own and the
// accepting side verifies it as above and learns its node ID from PeerID.
// RequireIdentity refuses peers without a certificate, for ports that only
// nodes use.
package linkauth
