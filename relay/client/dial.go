package client

import (
	"context"
	"crypto/tls"

	"veil/directory"
	"veil/onion/keys"
	"veil/relay/link"
)

// dialOR opens a TLS connection to a relay at the first of its OR
// addresses that answers, in the descriptor's order (directory/SPEC.md
// §2.1: an IPv4 address, then an IPv6 one when it has both). A network
// without a route to one family fails that dial at once, so a client on
// an IPv4-only or IPv6-only network uses the address it can reach.
func dialOR(ctx context.Context, d *directory.Descriptor, id keys.NodeID) (*tls.Conn, error) {
	var first error
	for _, a := range d.ORAddrs() {
		c, err := link.Dial(ctx, a.String(), id, nil)
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}
