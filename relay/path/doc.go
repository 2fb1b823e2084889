// Package path is path selection for clients: a persistent guard, then
// middle and exit relays chosen at random weighted by bandwidth, never two
// in one /16 (IPv6 /32) and never two of one declared family, with an exit
// whose policy allows the destination.
//
// A Selector keeps the client's guards (SPEC.md §1) and draws the other
// hops from a directory.View at each call. It is pure apart from the guard
// file in Options.DataDir: no sockets, no goroutines, and randomness, time
// and logging are injected. The rules and the guard file's layout are in
// SPEC.md beside this file.
package path
