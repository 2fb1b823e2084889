// Package shard is the share format of veil's anonymous file sharing: a file is
// encrypted under a fresh random key, cut into fixed-size segments sealed with
// AES-256-GCM, each segment cut into k data and m parity Reed-Solomon shards
// (klauspost/reedsolomon), every shard given an unlinkable keyed ID and placed on
// distinct storage relays by a keyed rendezvous hash. An encrypted manifest lists
// the hash of every shard; it is itself stored as shards, found through a small
// replicated head whose hash the link commits to. The link (`veil:…`) carries the
// file key, that root hash and the code's parameters, and nothing else.
//
// Everything here is pure: no sockets, no goroutines of its own, randomness
// injected, so it is tested byte for byte. Transport, storage (shard/store) and
// the CLI build on it. The byte layouts are in SPEC.md, which the code cites by
// section.
package shard
