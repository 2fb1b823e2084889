// Package seed is the directory seed: the bootstrap point relays join by
// gossip, which checks each relay, decides who is admitted and with which
// flags, and signs and serves a consensus every interval (directory/SPEC.md
// §5). Each seed signs only its own view; clients take what a majority of
// the seeds they pin agree on.
package seed
