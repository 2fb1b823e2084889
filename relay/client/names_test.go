package client

import (
	"errors"
	"testing"

	"veil/relay/socks"
)

// TestIsolationKeyIsUnambiguous: two different credential pairs never
// share a key, however their bytes line up.
func TestIsolationKeyIsUnambiguous(t *testing.T) {
	pairs := []socks.Credentials{
		{Username: "a\x00", Password: "b"},
		{Username: "a", Password: "\x00b"},
		{Username: "a:", Password: "b"},
		{Username: "a", Password: ":b"},
		{Username: "1:a", Password: ""},
		{Username: "", Password: "1:a"},
		{Username: "", Password: ""},
	}
	seen := map[string]socks.Credentials{}
	for _, c := range pairs {
		k := isolationKey(c)
		if other, ok := seen[k]; ok {
			t.Fatalf("%q and %q share the key %q", other, c, k)
		}
		seen[k] = c
	}
}

// TestSpecialNamesRefused: .onion, .local, .localhost and .internal
// names never leave the client; others do.
func TestSpecialNamesRefused(t *testing.T) {
	for _, h := range []string{"example.onion", "EXAMPLE.ONION.", "printer.local", "localhost", "app.localhost", "db.corp.internal", "onion"} {
		if err := checkName(h); !errors.Is(err, ErrSpecialName) {
			t.Errorf("%s: %v, want refused", h, err)
		}
	}
	for _, h := range []string{"example.com", "onion.example", "localhost.example.org", "internal.net"} {
		if err := checkName(h); err != nil {
			t.Errorf("%s refused: %v", h, err)
		}
	}
}

// TestConnectRefusesSpecialNames: the proxy answers a CONNECT to a .onion
// name at once, "not allowed", without a circuit or a view.
func TestConnectRefusesSpecialNames(t *testing.T) {
	cl := New(Options{})
	defer cl.Close()
	_, reply, err := cl.Connect(t.Context(), socks.Request{Cmd: socks.CmdConnect, Host: "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion", Port: 443}, socks.Credentials{})
	if !errors.Is(err, ErrSpecialName) || reply.Code != socks.ReplyNotAllowed {
		t.Fatalf("reply %#x, err %v", reply.Code, err)
	}
}
