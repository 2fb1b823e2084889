// Package directory holds descriptors, gossip pointers and consensus
// documents: their canonical encodings, signatures and the client's majority
// rule.
//
// A relay describes itself in a Descriptor signed by its identity key. In
// memberlist's node metadata it advertises only a small signed Pointer (its
// identity, descriptor sequence and digest); a node that sees a new pointer
// fetches the descriptor and checks that it matches. Every interval each
// seed signs its own Consensus: the relays it vouches for, with flags. A
// client trusts nothing a single seed says: Combine keeps a relay only when a
// strict majority of the seeds pinned in its config list the same descriptor
// for it (DESIGN.md G8).
//
// Everything here is pure: no sockets, no goroutines, and time is passed in.
// Byte layouts, limits and the fetch protocol are in SPEC.md beside this file;
// comments cite its sections.
package directory
