// Package relay is the relay daemon: it keeps the node's keys, listens for
// TLS links on its OR port, publishes its self-signed descriptor to the
// directory by gossip and republishes it before it expires or when its
// onion key rotates. Circuits, exits and shard storage build on it.
package relay
