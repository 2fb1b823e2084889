package linkauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"veil/onion/keys"
)

// testRand is a deterministic source: ChaCha8 implements io.Reader.
func testRand(seed byte) io.Reader { return mrand.NewChaCha8([32]byte{seed}) }

func testIdentity(t testing.TB, seed byte) *keys.Identity {
	t.Helper()
	id, err := keys.GenerateIdentity(testRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// hangTimeout bounds every wait in these tests. It detects a hang, never
// measures speed: a loaded two-core machine under the race detector must
// still pass.
const hangTimeout = 2 * time.Minute

// checkLeaks fails the test if it ends with more goroutines than it began
// with. Call it first, so its cleanup runs after every other one.
func checkLeaks(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(hangTimeout)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutines leaked: %d before, %d after\n%s",
					before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// result is what the test server saw of one connection.
type result struct {
	cs  tls.ConnectionState
	err error // handshake error
}

// testServer accepts connections on 127.0.0.1, handshakes each with cfg one
// at a time, reports the result and closes it. It stops at test cleanup.
type testServer struct {
	addr    string
	results chan result
}

func startServer(t testing.TB, cfg *tls.Config) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{addr: ln.Addr().String(), results: make(chan result, 64)}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return // listener closed
			}
			c := tls.Server(raw, cfg)
			_ = c.SetDeadline(time.Now().Add(hangTimeout))
			err = c.Handshake()
			select {
			case s.results <- result{cs: c.ConnectionState(), err: err}:
			default: // a benchmark does not read results
			}
			_ = c.Close()
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return s
}

// next returns the result of the next connection the server handled.
func (s *testServer) next(t testing.TB) result {
	t.Helper()
	select {
	case r := <-s.results:
		return r
	case <-time.After(hangTimeout):
		t.Fatal("server saw no connection")
		return result{}
	}
}

// rawListener accepts connections and hands each to handle in the accept
// goroutine; handle owns the conn. It stops at test cleanup.
func rawListener(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			handle(c)
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// selfSigned makes a self-signed certificate for key.
func selfSigned(t testing.TB, key crypto.Signer) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "not a veil node"},
		NotBefore:    certNotBefore,
		NotAfter:     certNotAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func ecdsaCert(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return selfSigned(t, key)
}

// brokenCert is id's link certificate with its self-signature corrupted.
// The key is still id's, so the TLS CertificateVerify is valid.
func brokenCert(t testing.TB, id *keys.Identity) tls.Certificate {
	t.Helper()
	cert, err := newCertificate(id, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der := append([]byte(nil), cert.Certificate[0]...)
	der[len(der)-1] ^= 1 // the signature is the last field
	if _, err := x509.ParseCertificate(der); err != nil {
		t.Fatalf("corrupted certificate no longer parses: %v", err)
	}
	cert.Certificate[0], cert.Leaf = der, nil
	return cert
}

// clientPresenting is an anonymous client config for expect that presents
// cert instead of nothing.
func clientPresenting(t testing.TB, expect keys.NodeID, cert tls.Certificate) *tls.Config {
	t.Helper()
	cfg, err := ClientConfig(expect, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return cfg
}

// serverPresenting is a server config for id that presents cert instead.
func serverPresenting(t testing.TB, id *keys.Identity, cert tls.Certificate) *tls.Config {
	t.Helper()
	cfg, err := ServerConfig(id, AnonymousClients)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Certificates = []tls.Certificate{cert}
	return cfg
}

func mustServerConfig(t testing.TB, id *keys.Identity, mode ClientAuthMode) *tls.Config {
	t.Helper()
	cfg, err := ServerConfig(id, mode)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// clientHandshake dials addr with cfg and returns the handshake error; the
// connection is closed either way.
func clientHandshake(t testing.TB, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: hangTimeout}, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	cs := c.ConnectionState()
	// TLS 1.3 clients finish before the server has checked them; a read
	// brings in the server's verdict (an alert, or EOF when it closes).
	_ = c.SetReadDeadline(time.Now().Add(hangTimeout))
	if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, io.EOF) {
		return cs, err
	}
	return cs, nil
}
