// Package onion is veil's circuit protocol with no sockets: fixed-size cells,
// relay messages and their fragmentation, the hybrid X25519 + ML-KEM-768
// circuit handshake, the per-hop key schedule and the layered cell crypto.
// Everything here is deterministic given injected randomness, so it can be
// checked byte for byte against testdata/onion. The wire format is specified
// in SPEC.md beside this file; comments cite its sections.
package onion
