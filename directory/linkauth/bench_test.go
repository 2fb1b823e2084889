package linkauth

import (
	"context"
	"testing"

	"veil/onion/keys"
)

// BenchmarkHandshake is a full TLS 1.3 link handshake on loopback
// (X25519MLKEM768, Ed25519 certificates): connect, handshake, close.
func BenchmarkHandshake(b *testing.B) {
	a, r := testIdentity(b, 1), testIdentity(b, 2)
	for _, bc := range []struct {
		name string
		own  *keys.Identity
	}{{"anonymous", nil}, {"relay-to-relay", r}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := startServer(b, mustServerConfig(b, a, AnonymousClients))
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				c, err := Dial(ctx, "tcp", srv.addr, a.ID(), bc.own)
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
