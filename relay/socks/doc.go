// Package socks is the SOCKS5 front door of `veil proxy` (RFC 1928, with
// RFC 1929 username/password). It parses requests, hands each CONNECT to a
// Connector (the circuit side) and relays bytes between the client and the
// stream the Connector opened.
//
// Names are never resolved here: a domain goes to the exit as a name, so
// nothing leaks to the local resolver (G6). Credentials are passed through
// untouched as isolation keys; giving different credentials different
// circuits is the Connector's job.
//
// socks.go holds the wire format, pure and fuzzed; server.go the Server.
// SPEC.md records the choices the RFCs leave open.
package socks
