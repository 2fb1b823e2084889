package linkauth

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

func TestCertificate(t *testing.T) {
	id := testIdentity(t, 1)
	a, err := newCertificate(id, testRand(9))
	if err != nil {
		t.Fatal(err)
	}
	b, err := newCertificate(id, testRand(9))
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Certificate[0]) != string(b.Certificate[0]) {
		t.Error("same rand gave different certificates")
	}
	leaf := a.Leaf
	if pub, ok := leaf.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(id.Public()) {
		t.Errorf("certificate key %T is not the identity key", leaf.PublicKey)
	}
	if leaf.Subject.CommonName != id.ID().String() {
		t.Errorf("CommonName %q, want %q", leaf.Subject.CommonName, id.ID())
	}
	if leaf.SerialNumber.Sign() <= 0 {
		t.Errorf("serial %v is not positive", leaf.SerialNumber)
	}
	if got, err := verifyPeer([]*x509.Certificate{leaf}); err != nil || got != id.ID() {
		t.Errorf("verifyPeer = %v, %v; want %v", got.Short(), err, id.ID().Short())
	}
	c, err := newCertificate(id, testRand(10))
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("different rand gave the same serial")
	}
}

func TestVerifyPeerRefuses(t *testing.T) {
	id := testIdentity(t, 1)
	good, err := newCertificate(id, testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	parse := func(c tls.Certificate) *x509.Certificate {
		x, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	for name, c := range map[string]struct {
		certs []*x509.Certificate
		want  string
	}{
		"none":             {nil, "no certificate"},
		"two":              {[]*x509.Certificate{good.Leaf, good.Leaf}, "2 certificates"},
		"ecdsa":            {[]*x509.Certificate{parse(ecdsaCert(t))}, "not Ed25519"},
		"broken signature": {[]*x509.Certificate{parse(brokenCert(t, id))}, "not self-signed"},
		"signed by other":  {[]*x509.Certificate{parse(signedByOther(t, id))}, "not self-signed"},
	} {
		_, err := verifyPeer(c.certs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one containing %q", name, err, c.want)
		}
	}
}

// signedByOther is a certificate for id's key signed by another identity.
func signedByOther(t *testing.T, id interface{ Public() ed25519.PublicKey }) tls.Certificate {
	t.Helper()
	other := testIdentity(t, 99)
	tmpl := &x509.Certificate{SerialNumber: bigOne(), NotBefore: certNotBefore, NotAfter: certNotAfter}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, id.Public(), other.TLSSigner())
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}}
}

func TestConfigArguments(t *testing.T) {
	id := testIdentity(t, 1)
	if _, err := ServerConfig(nil, AnonymousClients); err == nil {
		t.Error("ServerConfig(nil) succeeded")
	}
	if _, err := ServerConfig(id, 0); err == nil {
		t.Error("ServerConfig with mode 0 succeeded")
	}
	if _, err := ClientConfig([32]byte{}, nil); err == nil {
		t.Error("ClientConfig with a zero node id succeeded")
	}
}

func TestAnonymousClient(t *testing.T) {
	checkLeaks(t)
	a := testIdentity(t, 1)
	srv := startServer(t, mustServerConfig(t, a, AnonymousClients))

	c, err := Dial(t.Context(), "tcp", srv.addr, a.ID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := c.ConnectionState()
	c.Close()
	r := srv.next(t)
	if r.err != nil {
		t.Fatalf("server: %v", r.err)
	}
	for side, cs := range map[string]tls.ConnectionState{"client": cs, "server": r.cs} {
		if cs.Version != tls.VersionTLS13 {
			t.Errorf("%s: version %s, want TLS 1.3", side, tls.VersionName(cs.Version))
		}
		if cs.CurveID != tls.X25519MLKEM768 {
			t.Errorf("%s: key exchange %v, want X25519MLKEM768", side, cs.CurveID)
		}
		if cs.NegotiatedProtocol != ALPN {
			t.Errorf("%s: ALPN %q, want %q", side, cs.NegotiatedProtocol, ALPN)
		}
	}
	if id, ok, err := PeerID(cs); err != nil || !ok || id != a.ID() {
		t.Errorf("client PeerID = %s, %v, %v; want %s, true", id.Short(), ok, err, a.ID().Short())
	}
	if _, ok, err := PeerID(r.cs); err != nil || ok {
		t.Errorf("server PeerID of anonymous client: ok=%v err=%v, want ok=false", ok, err)
	}
	if r.cs.ServerName != "" {
		t.Errorf("client sent SNI %q", r.cs.ServerName)
	}
}

func TestRelayToRelay(t *testing.T) {
	checkLeaks(t)
	a, b := testIdentity(t, 1), testIdentity(t, 2)
	for _, mode := range []ClientAuthMode{AnonymousClients, RequireIdentity} {
		srv := startServer(t, mustServerConfig(t, a, mode))
		c, err := Dial(t.Context(), "tcp", srv.addr, a.ID(), b)
		if err != nil {
			t.Fatalf("%v: %v", mode, err)
		}
		c.Close()
		r := srv.next(t)
		if r.err != nil {
			t.Fatalf("%v: server: %v", mode, r.err)
		}
		if id, ok, err := PeerID(r.cs); err != nil || !ok || id != b.ID() {
			t.Errorf("%v: server PeerID = %s, %v, %v; want %s, true", mode, id.Short(), ok, err, b.ID().Short())
		}
	}
}

func TestRequireIdentityRefusesAnonymous(t *testing.T) {
	checkLeaks(t)
	a := testIdentity(t, 1)
	srv := startServer(t, mustServerConfig(t, a, RequireIdentity))
	cfg, err := ClientConfig(a.ID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clientHandshake(t, srv.addr, cfg); err == nil {
		t.Error("client: anonymous link accepted")
	}
	if r := srv.next(t); r.err == nil {
		t.Error("server: anonymous client accepted")
	}
}

func TestWrongIdentity(t *testing.T) {
	checkLeaks(t)
	a, b := testIdentity(t, 1), testIdentity(t, 2)
	srv := startServer(t, mustServerConfig(t, a, AnonymousClients))
	_, err := Dial(t.Context(), "tcp", srv.addr, b.ID(), nil)
	if !errors.Is(err, ErrIdentityMismatch) {
		t.Fatalf("err = %v, want ErrIdentityMismatch", err)
	}
	want := "linkauth: dial " + srv.addr + ": identity mismatch: want " + b.ID().Short() + ", got " + a.ID().Short()
	if err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
	if r := srv.next(t); r.err == nil {
		t.Error("server: handshake succeeded after the client refused it")
	}
}

func TestServerRefusesBadClientCert(t *testing.T) {
	checkLeaks(t)
	a, b := testIdentity(t, 1), testIdentity(t, 2)
	srv := startServer(t, mustServerConfig(t, a, AnonymousClients))
	for name, c := range map[string]struct {
		cert tls.Certificate
		want string
	}{
		"ecdsa":            {ecdsaCert(t), "not Ed25519"},
		"broken signature": {brokenCert(t, b), "not self-signed"},
	} {
		if _, err := clientHandshake(t, srv.addr, clientPresenting(t, a.ID(), c.cert)); err == nil {
			t.Errorf("%s: client: link survived", name)
		}
		if r := srv.next(t); r.err == nil || !strings.Contains(r.err.Error(), c.want) {
			t.Errorf("%s: server: err = %v, want one containing %q", name, r.err, c.want)
		}
	}
}

func TestClientRefusesBadServerCert(t *testing.T) {
	checkLeaks(t)
	a := testIdentity(t, 1)
	for name, c := range map[string]struct {
		cfg  func() *tls.Config
		want string
	}{
		"ecdsa":            {func() *tls.Config { return serverPresenting(t, a, ecdsaCert(t)) }, "not Ed25519"},
		"broken signature": {func() *tls.Config { return serverPresenting(t, a, brokenCert(t, a)) }, "not self-signed"},
		"two certificates": {func() *tls.Config {
			cert, err := newCertificate(a, testRand(1))
			if err != nil {
				t.Fatal(err)
			}
			cert.Certificate = append(cert.Certificate, cert.Certificate[0])
			return serverPresenting(t, a, cert)
		}, "2 certificates"},
		"no ALPN": {func() *tls.Config {
			cfg := mustServerConfig(t, a, AnonymousClients)
			cfg.NextProtos = nil
			return cfg
		}, "negotiated protocol"},
	} {
		srv := startServer(t, c.cfg())
		_, err := Dial(t.Context(), "tcp", srv.addr, a.ID(), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one containing %q", name, err, c.want)
		}
		srv.next(t)
	}
}

func TestClassicalPeersRefused(t *testing.T) {
	checkLeaks(t)
	a := testIdentity(t, 1)

	// A client that offers only X25519.
	srv := startServer(t, mustServerConfig(t, a, AnonymousClients))
	cfg, err := ClientConfig(a.ID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.CurvePreferences = []tls.CurveID{tls.X25519}
	if _, err := clientHandshake(t, srv.addr, cfg); err == nil {
		t.Error("classical-only client: link made")
	}
	if r := srv.next(t); r.err == nil || !strings.Contains(r.err.Error(), "key exchange") {
		t.Errorf("classical-only client: server err = %v, want no common key exchange", r.err)
	}

	// A server that accepts only X25519 and P-256.
	scfg := mustServerConfig(t, a, AnonymousClients)
	scfg.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	srv = startServer(t, scfg)
	if _, err := Dial(t.Context(), "tcp", srv.addr, a.ID(), nil); err == nil {
		t.Error("classical-only server: link made")
	}
	if r := srv.next(t); r.err == nil || !strings.Contains(r.err.Error(), "key exchange") {
		t.Errorf("classical-only server: err = %v, want no common key exchange", r.err)
	}

	// A client that speaks TLS 1.2 at most.
	srv = startServer(t, mustServerConfig(t, a, AnonymousClients))
	cfg, err = ClientConfig(a.ID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	if _, err := clientHandshake(t, srv.addr, cfg); err == nil {
		t.Error("TLS 1.2 client: link made")
	}
	srv.next(t)
}

func TestNoResumption(t *testing.T) {
	checkLeaks(t)
	a := testIdentity(t, 1)
	srv := startServer(t, mustServerConfig(t, a, AnonymousClients))
	cfg, err := ClientConfig(a.ID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A caller that turns tickets back on at the client gets none anyway.
	cfg.SessionTicketsDisabled = false
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	for i := range 2 {
		cs, err := clientHandshake(t, srv.addr, cfg)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if cs.DidResume {
			t.Errorf("connection %d resumed a session", i)
		}
		if r := srv.next(t); r.err != nil || r.cs.DidResume {
			t.Errorf("connection %d: server err %v, resumed %v", i, r.err, r.cs.DidResume)
		}
	}
}

func TestCheckParams(t *testing.T) {
	good := tls.ConnectionState{Version: tls.VersionTLS13, CurveID: tls.X25519MLKEM768, NegotiatedProtocol: ALPN}
	if err := checkParams(good); err != nil {
		t.Fatalf("good parameters refused: %v", err)
	}
	for name, mod := range map[string]func(*tls.ConnectionState){
		"TLS 1.2":    func(cs *tls.ConnectionState) { cs.Version = tls.VersionTLS12 },
		"X25519":     func(cs *tls.ConnectionState) { cs.CurveID = tls.X25519 },
		"P-256 PQ":   func(cs *tls.ConnectionState) { cs.CurveID = tls.SecP256r1MLKEM768 },
		"no ALPN":    func(cs *tls.ConnectionState) { cs.NegotiatedProtocol = "" },
		"other ALPN": func(cs *tls.ConnectionState) { cs.NegotiatedProtocol = "h2" },
		"resumed":    func(cs *tls.ConnectionState) { cs.DidResume = true },
	} {
		cs := good
		mod(&cs)
		if err := checkParams(cs); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPeerIDBeforeHandshake(t *testing.T) {
	if _, _, err := PeerID(tls.ConnectionState{}); err == nil {
		t.Error("PeerID of an incomplete handshake succeeded")
	}
}

func TestProbe(t *testing.T) {
	checkLeaks(t)
	a, b := testIdentity(t, 1), testIdentity(t, 2)
	srv := startServer(t, mustServerConfig(t, a, AnonymousClients))
	ctx, cancel := context.WithTimeout(t.Context(), hangTimeout)
	defer cancel()
	if err := Probe(ctx, srv.addr, a.ID()); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if r := srv.next(t); r.err != nil {
		t.Errorf("server: %v", r.err)
	}

	err := Probe(ctx, srv.addr, b.ID())
	want := "linkauth: probe " + srv.addr + ": identity mismatch: want " + b.ID().Short() + ", got " + a.ID().Short()
	if !errors.Is(err, ErrIdentityMismatch) || err.Error() != want {
		t.Errorf("err = %v\nwant  %s", err, want)
	}
	srv.next(t)
}

func TestProbeGarbage(t *testing.T) {
	checkLeaks(t)
	a := testIdentity(t, 1)
	addr := rawListener(t, func(c net.Conn) {
		_, _ = c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\nthis is not tls\n"))
		_ = c.Close()
	})
	ctx, cancel := context.WithTimeout(t.Context(), hangTimeout)
	defer cancel()
	err := Probe(ctx, addr, a.ID())
	if err == nil {
		t.Fatal("probe of a garbage server succeeded")
	}
	// It failed on the garbage, not by waiting for its deadline.
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("probe waited for its deadline (%v), want a failure on the garbage", err)
	}
	if !strings.HasPrefix(err.Error(), "linkauth: probe "+addr+": ") {
		t.Errorf("err = %q, want it to name the probe and address", err)
	}
}

func TestProbeSilent(t *testing.T) {
	checkLeaks(t)
	a := testIdentity(t, 1)
	held := make(chan net.Conn, 1)
	addr := rawListener(t, func(c net.Conn) { held <- c })
	t.Cleanup(func() {
		select {
		case c := <-held:
			c.Close()
		default:
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Probe(ctx, addr, a.ID())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	// Bounded by ctx, not by some longer deadline of its own; how soon
	// after 200ms is the machine's business.
	if d := time.Since(start); d > hangTimeout {
		t.Errorf("probe took %v for a 200ms deadline", d)
	}
}

func TestProbeRefused(t *testing.T) {
	checkLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := Probe(t.Context(), addr, testIdentity(t, 1).ID()); err == nil {
		t.Error("probe of a closed port succeeded")
	}
}

func bigOne() *big.Int { return big.NewInt(1) }
