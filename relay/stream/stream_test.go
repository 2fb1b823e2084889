package stream

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"veil/onion"
)

// pipe joins two circuits the way a link does: cells go through a queue
// and are handled by the far side's own goroutine, never under the
// sender's lock.
type pipe struct {
	mu     sync.Mutex
	n      uint64
	data   int // DATA cells sent
	closed bool
	to     chan cell
	peer   *Circuit
	wg     sync.WaitGroup
	fails  chan error
}

type cell struct {
	cmd  onion.RelayCmd
	sid  uint16
	tag  [onion.TagLen]byte
	data []byte
}

func (p *pipe) SendRelay(_ context.Context, cmd onion.RelayCmd, sid uint16, data []byte) ([onion.TagLen]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	var ctr [8]byte
	binary.BigEndian.PutUint64(ctr[:], p.n)
	sum := sha256.Sum256(append(ctr[:], byte(cmd)))
	var tag [onion.TagLen]byte
	copy(tag[:], sum[:])
	if p.closed {
		return tag, errors.New("pipe closed")
	}
	if cmd == onion.RelayData {
		p.data++
	}
	p.to <- cell{cmd, sid, tag, append([]byte(nil), data...)}
	return tag, nil
}

func (p *pipe) run() {
	defer p.wg.Done()
	for c := range p.to {
		var err error
		switch c.cmd {
		case onion.RelayData:
			_, err = p.peer.HandleData(c.sid, c.tag, c.data)
			p.peer.Flush()
		case onion.RelaySendme:
			err = p.peer.HandleSendme(c.sid, c.data)
		case onion.RelayEnd:
			e, perr := onion.ParseEnd(c.data)
			if perr == nil {
				p.peer.HandleEnd(c.sid, e.Reason)
			}
		case onion.RelayFin:
			p.peer.HandleFin(c.sid)
		}
		if err != nil {
			p.fails <- err
		}
	}
}

// linked returns two circuits whose cells reach each other.
func linked(t *testing.T) (a, b *Circuit, ab, ba *pipe) {
	ab = &pipe{to: make(chan cell, 1024), fails: make(chan error, 16)}
	ba = &pipe{to: make(chan cell, 1024), fails: make(chan error, 16)}
	a, b = NewCircuit(ab), NewCircuit(ba)
	ab.peer, ba.peer = b, a
	ab.wg.Add(1)
	ba.wg.Add(1)
	go ab.run()
	go ba.run()
	t.Cleanup(func() {
		a.Fail(ErrEnded)
		b.Fail(ErrEnded)
		for _, p := range []*pipe{ab, ba} {
			p.mu.Lock()
			p.closed = true
			close(p.to)
			p.mu.Unlock()
		}
		ab.wg.Wait()
		ba.wg.Wait()
	})
	return a, b, ab, ba
}

func TestStreamCarriesBytesExactly(t *testing.T) {
	a, b, ab, ba := linked(t)
	sa, _ := a.Open(7)
	sb, _ := b.Open(7)
	want := make([]byte, 10<<20+123) // several windows' worth
	rand.Read(want)
	go func() {
		sa.Write(want)
		sa.Close()
	}()
	got, err := io.ReadAll(sb)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d, or they differ", len(got), len(want))
	}
	select {
	case err := <-ab.fails:
		t.Fatal(err)
	case err := <-ba.fails:
		t.Fatal(err)
	default:
	}
}

// A half-close ends one direction only: the far end reads everything and
// then EOF, and can still answer, which arrives whole; once FIN went both
// ways, closing sends no END, and data after a FIN is a protocol error.
func TestHalfClose(t *testing.T) {
	a, b, ab, _ := linked(t)
	sa, _ := a.Open(3)
	sb, _ := b.Open(3)
	request := []byte("request")
	if _, err := sa.Write(request); err != nil {
		t.Fatal(err)
	}
	if err := sa.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := sa.Write([]byte("x")); !errors.Is(err, ErrWriteClosed) {
		t.Fatalf("write after CloseWrite: %v, want ErrWriteClosed", err)
	}
	got, err := io.ReadAll(sb)
	if err != nil || !bytes.Equal(got, request) {
		t.Fatalf("far end read %q, %v; want %q, EOF", got, err, request)
	}
	answer := make([]byte, 3<<20) // more than a stream window
	rand.Read(answer)
	go func() {
		sb.Write(answer)
		sb.CloseWrite()
	}()
	var back bytes.Buffer
	if _, err := io.Copy(&back, sa); err != nil || !bytes.Equal(back.Bytes(), answer) {
		t.Fatalf("answer after a half-close: %d bytes, %v; want %d", back.Len(), err, len(answer))
	}
	ab.mu.Lock()
	sentBefore := ab.n
	ab.mu.Unlock()
	sa.Close()
	sb.Close()
	ab.mu.Lock()
	sentAfter := ab.n
	ab.mu.Unlock()
	if sentAfter != sentBefore {
		t.Fatalf("closing after FIN both ways sent %d cells, want none", sentAfter-sentBefore)
	}
	if a.Len() != 0 || b.Len() != 0 {
		t.Fatalf("streams left open: %d and %d", a.Len(), b.Len())
	}

	s2a, _ := a.Open(4)
	s2b, _ := b.Open(4)
	s2a.CloseWrite()
	for range 100 {
		if _, err := s2b.Read(make([]byte, 1)); err == io.EOF {
			break
		}
	}
	var tag [onion.TagLen]byte
	tag[0] = 1
	if _, err := b.HandleData(4, tag, []byte("late")); err == nil {
		t.Fatal("DATA after FIN accepted")
	}
}

// io.Copy into a stream (ReadFrom) fills every cell when the source has
// plenty, and io.Copy out of one (WriteTo) delivers every byte in order.
func TestCopyFillsCells(t *testing.T) {
	a, b, ab, _ := linked(t)
	sa, _ := a.Open(9)
	sb, _ := b.Open(9)
	want := make([]byte, 5<<20+7)
	rand.Read(want)
	go func() {
		// The reader hides bytes.Reader's WriteTo, as a TCP source does.
		if _, err := io.Copy(sa, struct{ io.Reader }{bytes.NewReader(want)}); err != nil {
			t.Error(err)
		}
		sa.Close()
	}()
	var got bytes.Buffer
	if _, err := io.Copy(&got, sb); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("got %d bytes, want %d, or they differ", got.Len(), len(want))
	}
	ab.mu.Lock()
	defer ab.mu.Unlock()
	if cells := (len(want) + onion.MaxRelayData - 1) / onion.MaxRelayData; ab.data != cells {
		t.Fatalf("%d DATA cells for %d bytes, want %d", ab.data, len(want), cells)
	}
}

// A reader that does not read stops the writer at the stream window:
// nothing buffers without bound.
func TestSlowReaderStopsWriter(t *testing.T) {
	a, b, _, _ := linked(t)
	sa, _ := a.Open(1)
	sb, _ := b.Open(1)
	written := make(chan int, 1)
	go func() {
		n, _ := sa.Write(make([]byte, (onion.StreamWindowStart+10)*onion.MaxRelayData))
		written <- n
	}()
	// Wait until the reader holds a full window, then give the writer a
	// moment more: it must stay at exactly the window.
	queued := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(sb.inbox)
	}
	deadline := time.Now().Add(5 * time.Second)
	for queued() < onion.StreamWindowStart && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if q := queued(); q != onion.StreamWindowStart {
		t.Fatalf("%d cells queued at the reader, want exactly the window of %d", q, onion.StreamWindowStart)
	}
	select {
	case <-written:
		t.Fatal("the writer finished although the reader read nothing")
	default:
	}
	// Reading frees the window and the writer finishes.
	go io.Copy(io.Discard, sb)
	select {
	case n := <-written:
		if n != (onion.StreamWindowStart+10)*onion.MaxRelayData {
			t.Fatalf("wrote %d", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the writer never resumed")
	}
}

func TestSendmeWithWrongTagRefused(t *testing.T) {
	a, _, _, _ := linked(t)
	s, _ := a.Open(1)
	s.Write(make([]byte, onion.CircWindowIncrement*onion.MaxRelayData))
	bogus, _ := (&onion.Sendme{Tag: [16]byte{1}}).Marshal()
	if err := a.HandleSendme(0, bogus); err == nil {
		t.Fatal("a circuit SENDME with a tag never sent was accepted")
	}
}

func TestEndAndFail(t *testing.T) {
	a, b, _, _ := linked(t)
	sa, _ := a.Open(3)
	sb, _ := b.Open(3)
	sa.Write([]byte("hello"))
	sa.CloseWith(onion.EndDone)
	got, err := io.ReadAll(sb)
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v", got, err)
	}
	sb2, _ := b.Open(4)
	b.Fail(errors.New("circuit destroyed"))
	if _, err := sb2.Read(make([]byte, 1)); !errors.Is(err, ErrEnded) {
		t.Fatalf("read after Fail: %v", err)
	}
	if _, err := sb2.Write([]byte("x")); !errors.Is(err, ErrEnded) {
		t.Fatalf("write after Fail: %v", err)
	}
	if _, err := b.Open(5); err == nil {
		t.Fatal("a stream opened on a failed circuit")
	}
}

// WriteTo a socket: Flush writes arrived data straight to it while it
// takes it, hands over to WriteTo's blocking writes when it is full (the
// far side reads slowly at first), and every byte arrives once, in order.
func TestWriteToSocketDirectAndHandedOver(t *testing.T) {
	a, b, ab, ba := linked(t)
	sa, _ := a.Open(11)
	sb, _ := b.Open(11)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	in, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	// A small send buffer fills fast, so both paths run.
	out.(*net.TCPConn).SetWriteBuffer(16 << 10)

	want := make([]byte, 24<<20+77)
	rand.Read(want)
	go func() {
		sa.Write(want)
		sa.Close()
	}()
	copied := make(chan error, 1)
	go func() {
		_, err := sb.WriteTo(out)
		out.Close()
		copied <- err
	}()
	var got bytes.Buffer
	buf := make([]byte, 32<<10)
	for i := 0; ; i++ {
		if i < 50 {
			time.Sleep(time.Millisecond) // a slow reader at first
		}
		n, err := in.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := <-copied; err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("got %d bytes, want %d, or they differ", got.Len(), len(want))
	}
	for _, p := range []*pipe{ab, ba} {
		select {
		case err := <-p.fails:
			t.Fatal(err)
		default:
		}
	}
}

// TestDataLongerThanOneCellRefused: a DATA message is one cell (onion/SPEC.md
// §10); a longer one is a protocol error, never cut short to a cell's worth.
func TestDataLongerThanOneCellRefused(t *testing.T) {
	_, b, _, _ := linked(t)
	if _, err := b.Open(5); err != nil {
		t.Fatal(err)
	}
	var tag [onion.TagLen]byte
	if _, err := b.HandleData(5, tag, make([]byte, onion.MaxRelayData+1)); err == nil {
		t.Fatal("a DATA message of more than one cell was accepted")
	}
	if _, err := b.HandleData(5, tag, make([]byte, onion.MaxRelayData)); err != nil {
		t.Fatalf("a full cell of DATA: %v", err)
	}
}
