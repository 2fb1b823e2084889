package cellsize

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	bufSize   = 64 << 10  // bufio.Reader / bufio.Writer size on every link
	chainData = 256 << 20 // useful bytes moved per BenchmarkChain op
	cmdRelay  = 3         // arbitrary command byte in the cleartext header
)

// ---- crypto cost model ----------------------------------------------------

func newAEAD(tb testing.TB) cipher.AEAD {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		tb.Fatal(err)
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		tb.Fatal(err)
	}
	g, err := cipher.NewGCM(blk)
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// layer is one hop's AES-256-GCM key with its nonce counter
// (nonce = 4 zero bytes || 8-byte big-endian counter).
type layer struct {
	aead  cipher.AEAD
	nonce [12]byte
	ctr   uint64
}

// apply is the cost model of one onion layer on a cell: one GCM Seal in place of the
// first S-21 payload bytes, writing the tag into the last 16 bytes of the cell. It
// costs the same as the real Open of S-5 bytes; the result is not meant to decrypt.
func (l *layer) apply(cell []byte) {
	l.ctr++
	binary.BigEndian.PutUint64(l.nonce[4:], l.ctr)
	p := cell[HeaderLen : len(cell)-TagLen]
	l.aead.Seal(p[:0], l.nonce[:], p, nil)
}

// ---- BenchmarkRelayCrypto ---------------------------------------------------

// BenchmarkRelayCrypto is one relay's per-cell crypto: one real AES-256-GCM Open in
// place over the S-5 payload bytes (fixed key, counter nonce), then a 16-byte memmove.
// Open in place destroys the ciphertext, so cells come from a ring (at most ~256 KiB,
// i.e. cache-warm as a just-read cell would be) that is restored from sealed copies
// with the timer stopped.
func BenchmarkRelayCrypto(b *testing.B) {
	for _, s := range Sizes {
		b.Run(fmt.Sprintf("S=%d", s), func(b *testing.B) {
			aead := newAEAD(b)
			m := max(16, (256<<10)/s)
			ring := make([][]byte, m)
			sealed := make([][]byte, m)
			var nonce [12]byte
			for j := range m {
				cell := make([]byte, s)
				rand.Read(cell)
				binary.BigEndian.PutUint64(nonce[4:], uint64(j))
				p := cell[HeaderLen : s-TagLen]
				aead.Seal(p[:0], nonce[:], p, nil)
				sealed[j] = cell
				ring[j] = slices.Clone(cell)
			}
			b.SetBytes(int64(Useful(s)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				j := i % m
				if j == 0 && i > 0 {
					b.StopTimer()
					for k := range ring {
						copy(ring[k], sealed[k])
					}
					b.StartTimer()
				}
				cell := ring[j]
				binary.BigEndian.PutUint64(nonce[4:], uint64(j))
				pt, err := aead.Open(cell[HeaderLen:HeaderLen], nonce[:], cell[HeaderLen:], nil)
				if err != nil {
					b.Fatal(err)
				}
				copy(pt[FillerLen-TagLen:FillerLen], pt[FillerLen:FillerLen+MarkerLen])
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/cell")
		})
	}
}

// ---- TLS links ----------------------------------------------------------------

var tlsOnce struct {
	sync.Once
	srv, cli *tls.Config
	err      error
}

// tlsConfigs returns a server config with a self-signed Ed25519 certificate and a
// client config that skips verification; both TLS 1.3 with Go's default curves.
func tlsConfigs(tb testing.TB) (srv, cli *tls.Config) {
	tlsOnce.Do(func() {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			tlsOnce.err = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "relay"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
		if err != nil {
			tlsOnce.err = err
			return
		}
		tlsOnce.srv = &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}},
			MinVersion:   tls.VersionTLS13,
		}
		tlsOnce.cli = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	})
	if tlsOnce.err != nil {
		tb.Fatal(tlsOnce.err)
	}
	return tlsOnce.srv, tlsOnce.cli
}

// tlsPair connects a TLS 1.3 client and server over 127.0.0.1 and completes the
// handshake. raw gets both underlying TCP connections (closing them unblocks any
// Read or Write on the TLS connections without sending alerts).
func tlsPair(tb testing.TB, raw *[]net.Conn) (cli, srv *tls.Conn) {
	srvCfg, cliCfg := tlsConfigs(tb)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		s   *tls.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- res{err: err}
			return
		}
		s := tls.Server(c, srvCfg)
		ch <- res{c, s, s.Handshake()}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	*raw = append(*raw, c)
	cli = tls.Client(c, cliCfg)
	cerr := cli.Handshake()
	r := <-ch
	if r.c != nil {
		*raw = append(*raw, r.c)
	}
	if cerr != nil || r.err != nil {
		tb.Fatal(errors.Join(cerr, r.err))
	}
	return cli, r.s
}

// ---- the chain ----------------------------------------------------------------

// chain is client → r1 → r2 → r3 → sink over 4 TLS 1.3 links on loopback. Each relay
// forwards both directions (one goroutine each) on the same TLS connections, applying
// one onion layer per cell when crypto is on.
type chain struct {
	s      int
	crypto bool
	client []*layer // 3 layers, when crypto is on

	cliR  *bufio.Reader
	cliW  *bufio.Writer
	sinkR *bufio.Reader
	sinkW *bufio.Writer

	raw     []net.Conn
	wg      sync.WaitGroup
	closing atomic.Bool
	errMu   sync.Mutex
	err     error // first unexpected relay error
}

func newChain(tb testing.TB, s int, crypto bool) *chain {
	c := &chain{s: s, crypto: crypto}
	var cli, srv [4]*tls.Conn // link i: cli[i] is the upstream end, srv[i] the downstream end
	for i := range 4 {
		cli[i], srv[i] = tlsPair(tb, &c.raw)
	}
	if st := cli[0].ConnectionState(); st.Version != tls.VersionTLS13 {
		tb.Fatalf("negotiated %s", tls.VersionName(st.Version))
	}
	c.cliR, c.cliW = bufio.NewReaderSize(cli[0], bufSize), bufio.NewWriterSize(cli[0], bufSize)
	c.sinkR, c.sinkW = bufio.NewReaderSize(srv[3], bufSize), bufio.NewWriterSize(srv[3], bufSize)
	if crypto {
		for range 3 {
			c.client = append(c.client, &layer{aead: newAEAD(tb)})
		}
	}
	for i := range 3 { // relay i+1 sits between srv[i] and cli[i+1]
		var fwd, back *layer
		if crypto {
			fwd, back = &layer{aead: newAEAD(tb)}, &layer{aead: newAEAD(tb)}
		}
		c.goForward(cli[i+1], srv[i], fwd)
		c.goForward(srv[i], cli[i+1], back)
	}
	return c
}

// goForward runs one relay direction: read whole cells from src through a 64 KiB
// bufio.Reader, apply the layer and a 16-byte memmove, write to dst through a 64 KiB
// bufio.Writer that is flushed whenever no more input is buffered.
func (c *chain) goForward(dst, src net.Conn, l *layer) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		br := bufio.NewReaderSize(src, bufSize)
		bw := bufio.NewWriterSize(dst, bufSize)
		cell := make([]byte, c.s)
		var err error
		for {
			if _, err = io.ReadFull(br, cell); err != nil {
				break
			}
			if l != nil {
				l.apply(cell)
				p := cell[HeaderLen:]
				copy(p[FillerLen-TagLen:FillerLen], p[FillerLen:FillerLen+MarkerLen])
			}
			if _, err = bw.Write(cell); err != nil {
				break
			}
			if br.Buffered() == 0 {
				if err = bw.Flush(); err != nil {
					break
				}
			}
		}
		c.fail(err)
	}()
}

// fail records an error that happened while the chain was supposed to be running
// and tears the chain down so that the client and sink see it too.
func (c *chain) fail(err error) {
	if c.closing.Load() {
		return
	}
	c.errMu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.errMu.Unlock()
	c.closeConns()
}

func (c *chain) closeConns() {
	for _, r := range c.raw {
		r.Close()
	}
}

// Close tears the chain down and waits for all its goroutines.
func (c *chain) Close() {
	c.closing.Store(true)
	c.closeConns()
	c.wg.Wait()
}

func (c *chain) relayErr(err error) error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.err != nil {
		return fmt.Errorf("%w (relay: %v)", err, c.err)
	}
	return err
}

// newCell fills the cleartext header: a sequence number the sink checks, so any loss,
// reordering or misframing of cells fails the run.
func newCell(cell []byte, seq uint32) {
	binary.BigEndian.PutUint32(cell[0:4], seq)
	cell[4] = cmdRelay
}

// push sends n cells from the client (3 layers each) and reads them at the sink.
func (c *chain) push(n int) error {
	errc := make(chan error, 1)
	go func() {
		cell := make([]byte, c.s)
		for i := range n {
			newCell(cell, uint32(i))
			for _, l := range c.client {
				l.apply(cell)
			}
			if _, err := c.cliW.Write(cell); err != nil {
				errc <- err
				return
			}
		}
		errc <- c.cliW.Flush()
	}()
	cell := make([]byte, c.s)
	for i := range n {
		if _, err := io.ReadFull(c.sinkR, cell); err != nil {
			c.closeConns()
			<-errc
			return c.relayErr(fmt.Errorf("sink: cell %d of %d: %w", i, n, err))
		}
		if seq := binary.BigEndian.Uint32(cell); seq != uint32(i) || cell[4] != cmdRelay {
			c.closeConns()
			<-errc
			return fmt.Errorf("sink: cell %d has seq %d cmd %d", i, seq, cell[4])
		}
	}
	if err := <-errc; err != nil {
		return c.relayErr(fmt.Errorf("client: %w", err))
	}
	return nil
}

// goEcho makes the sink send every cell it receives straight back.
func (c *chain) goEcho() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		cell := make([]byte, c.s)
		for {
			if _, err := io.ReadFull(c.sinkR, cell); err != nil {
				c.fail(err)
				return
			}
			if _, err := c.sinkW.Write(cell); err != nil {
				c.fail(err)
				return
			}
			if err := c.sinkW.Flush(); err != nil {
				c.fail(err)
				return
			}
		}
	}()
}

// pingPong sends one cell to the sink and waits for its echo: the client applies 3
// layers on the way out and the cost of 3 on the way back. Needs goEcho.
func (c *chain) pingPong(cell []byte, seq uint32) error {
	newCell(cell, seq)
	for _, l := range c.client {
		l.apply(cell)
	}
	if _, err := c.cliW.Write(cell); err != nil {
		return c.relayErr(err)
	}
	if err := c.cliW.Flush(); err != nil {
		return c.relayErr(err)
	}
	if _, err := io.ReadFull(c.cliR, cell); err != nil {
		return c.relayErr(err)
	}
	if got := binary.BigEndian.Uint32(cell); got != seq {
		return fmt.Errorf("echo has seq %d, want %d", got, seq)
	}
	for _, l := range c.client {
		l.apply(cell)
	}
	return nil
}

// ---- benchmarks and smoke test -----------------------------------------------------

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchChain(b *testing.B, s int, crypto bool) {
	c := newChain(b, s, crypto)
	defer c.Close()
	u := Useful(s)
	cells := (chainData + u - 1) / u
	if err := c.push(1024); err != nil { // warm up: past TLS dynamic record sizing
		b.Fatal(err)
	}
	b.SetBytes(int64(cells) * int64(u))
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if err := c.push(cells); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	total := float64(b.N) * float64(cells)
	b.ReportMetric(total/b.Elapsed().Seconds(), "cells/s")
	// CPU cost is less sensitive than wall time to other load on a shared machine.
	b.ReportMetric(cpu.Seconds()/(total*float64(u)/1e9), "core-s/GB")
	b.ReportMetric(cpu.Seconds()/b.Elapsed().Seconds(), "cores")
}

// BenchmarkChain moves 256 MiB of useful data per op through client → r1 → r2 → r3 →
// sink, TLS 1.3 on every link, 3 layers at the client and one per relay.
func BenchmarkChain(b *testing.B) {
	for _, s := range Sizes {
		b.Run(fmt.Sprintf("S=%d", s), func(b *testing.B) { benchChain(b, s, true) })
	}
}

// BenchmarkChainNoCrypto is BenchmarkChain at S=4096 without onion layers (TLS only):
// the ceiling the onion crypto is measured against.
func BenchmarkChainNoCrypto(b *testing.B) {
	b.Run("S=4096", func(b *testing.B) { benchChain(b, 4096, false) })
}

// BenchmarkLatency is the round trip of one cell client → sink → client through the 3
// relays. ns/op is the median over the b.N round trips; p90 and mean are extra.
func BenchmarkLatency(b *testing.B) {
	for _, s := range Sizes {
		b.Run(fmt.Sprintf("S=%d", s), func(b *testing.B) {
			c := newChain(b, s, true)
			defer c.Close()
			c.goEcho()
			cell := make([]byte, s)
			for i := range 100 { // warm up
				if err := c.pingPong(cell, uint32(i)); err != nil {
					b.Fatal(err)
				}
			}
			rtt := make([]time.Duration, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if err := c.pingPong(cell, uint32(i)); err != nil {
					b.Fatal(err)
				}
				rtt[i] = time.Since(t0)
			}
			b.StopTimer()
			mean := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			slices.Sort(rtt)
			b.ReportMetric(float64(rtt[len(rtt)/2].Nanoseconds()), "ns/op")
			b.ReportMetric(float64(rtt[len(rtt)*9/10].Nanoseconds()), "ns-p90/op")
			b.ReportMetric(mean, "ns-mean/op")
		})
	}
}

// TestChainSmoke runs the benchmark machinery once at S=4096: 1 MiB through the chain
// with and without onion crypto, and a few round trips; checks TLS 1.3 with the
// default hybrid key exchange and that nothing is left running.
func TestChainSmoke(t *testing.T) {
	const s = 4096
	g0 := runtime.NumGoroutine()
	cells := (1<<20 + Useful(s) - 1) / Useful(s)
	for _, crypto := range []bool{false, true} {
		c := newChain(t, s, crypto)
		if err := c.push(cells); err != nil {
			c.Close()
			t.Fatal(err)
		}
		c.goEcho()
		cell := make([]byte, s)
		for i := range 10 {
			if err := c.pingPong(cell, uint32(i)); err != nil {
				c.Close()
				t.Fatal(err)
			}
		}
		c.Close()
	}
	_, cliCfg := tlsConfigs(t)
	srvCfg, _ := tlsConfigs(t)
	var raw []net.Conn
	cli, _ := tlsPair(t, &raw)
	st := cli.ConnectionState()
	for _, r := range raw {
		r.Close()
	}
	if st.Version != tls.VersionTLS13 || st.CurveID != tls.X25519MLKEM768 {
		t.Errorf("negotiated %s with %v, want TLS 1.3 with X25519MLKEM768", tls.VersionName(st.Version), st.CurveID)
	}
	if cliCfg.CurvePreferences != nil || srvCfg.CurvePreferences != nil {
		t.Error("curve preferences set; want Go defaults")
	}
	for deadline := time.Now().Add(2 * time.Minute); runtime.NumGoroutine() > g0; { // a hang detector, not a speed check
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left running, had %d", runtime.NumGoroutine(), g0)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestUseful pins the overhead arithmetic.
func TestUseful(t *testing.T) {
	if Overhead != 91 || Useful(512) != 421 {
		t.Fatalf("Overhead %d, Useful(512) %d", Overhead, Useful(512))
	}
}
