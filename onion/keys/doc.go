// Package keys holds the identity and onion keys of a node: generation,
// on-disk storage with safe permissions, onion-key rotation, node IDs.
//
// A node has one long-term Ed25519 identity (its NodeID is a hash of the
// public key) and a medium-term X25519 onion key that circuit handshakes are
// made to. The identity signs each onion key in an OnionCert, so a client
// that knows a relay's identity can check which onion key to use. Onion keys
// rotate (Options.RotateEvery); the previous one stays usable for a grace
// period so handshakes begun against an older descriptor still succeed.
//
// Byte layouts of the cert and the key files are in SPEC.md beside this file
// and at the top of cert.go and keyfile.go.
package keys
