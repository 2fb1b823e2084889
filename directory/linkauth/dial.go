package linkauth

import (
	"context"
	"crypto/tls"
	"net"
	"strings"

	"veil/onion/keys"
)

// Dial connects to addr and completes the TLS handshake under ctx,
// authenticating the server as expect; own is as for ClientConfig. On error
// nothing is left open.
func Dial(ctx context.Context, network, addr string, expect keys.NodeID, own *keys.Identity) (*tls.Conn, error) {
	return dial(ctx, "dial", network, addr, expect, own)
}

// Probe checks that addr answers as node expect: it connects, completes the
// handshake as an anonymous client, checks the identity and closes. The seed
// calls it before listing a relay. Errors read like
// "linkauth: probe 127.0.0.1:9001: identity mismatch: want abcde-…, got …".
func Probe(ctx context.Context, addr string, expect keys.NodeID) error {
	c, err := dial(ctx, "probe", "tcp", addr, expect, nil)
	if err != nil {
		return err
	}
	// The answer is in: a failed close_notify says nothing about identity.
	_ = c.Close()
	return nil
}

func dial(ctx context.Context, op, network, addr string, expect keys.NodeID, own *keys.Identity) (*tls.Conn, error) {
	cfg, err := ClientConfig(expect, own)
	if err != nil {
		return nil, &opError{op: op, addr: addr, err: err}
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &opError{op: op, addr: addr, err: err}
	}
	return handshake(ctx, op, addr, raw, cfg)
}

// Client is Dial over a connection the caller dialled (a relay's links
// wrap theirs to batch system calls). It owns raw: on error raw is closed.
func Client(ctx context.Context, raw net.Conn, expect keys.NodeID, own *keys.Identity) (*tls.Conn, error) {
	cfg, err := ClientConfig(expect, own)
	if err != nil {
		_ = raw.Close()
		return nil, &opError{op: "handshake", addr: raw.RemoteAddr().String(), err: err}
	}
	return handshake(ctx, "handshake", raw.RemoteAddr().String(), raw, cfg)
}

func handshake(ctx context.Context, op, addr string, raw net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	c := tls.Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, &opError{op: op, addr: addr, err: err}
	}
	return c, nil
}

// opError puts the operation and address in front of a cause, without
// repeating the package prefix the cause may already carry.
type opError struct {
	op, addr string
	err      error
}

func (e *opError) Error() string {
	return "linkauth: " + e.op + " " + e.addr + ": " + strings.TrimPrefix(e.err.Error(), "linkauth: ")
}

func (e *opError) Unwrap() error { return e.err }
