package link

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"veil/onion"
)

// countingSink releases every cell and signals once it has seen want.
type countingSink struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (s *countingSink) HandleCell(l *Link, c *onion.Cell) {
	Release(c)
	if s.n.Add(1) == s.want {
		close(s.done)
	}
}

func (s *countingSink) LinkClosed(*Link, error) {}

// forwarder is the relay path: every cell read on one link is sent on
// another, as a relay forwards a circuit's cells.
type forwarder struct{ out *Link }

func (f *forwarder) HandleCell(l *Link, c *onion.Cell) {
	if err := f.out.Send(context.Background(), c); err != nil {
		Release(c)
	}
}

func (f *forwarder) LinkClosed(*Link, error) {}

func reportCells(b *testing.B, start time.Time) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "cells/s")
}

// BenchmarkLinkThroughput sends cells one way over one loopback TLS link:
// pool → Send → writer → TLS → reader → Handler → pool.
func BenchmarkLinkThroughput(b *testing.B) {
	s := startServer(b, newIdentity(b))
	sink := &countingSink{done: make(chan struct{})}
	ini, _ := establishPair(b, s, nil, Options{Handler: sink}, Options{Handler: sink})
	sink.want = int64(b.N)
	send := func(n int) {
		for range n {
			c := NewCell()
			c.CircID, c.Cmd = 1, onion.CellRelay
			if err := ini.Send(context.Background(), c); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.SetBytes(onion.CellSize)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	send(b.N)
	<-sink.done
	reportCells(b, start)
}

// BenchmarkLinkForward is a relay's read → handler → send path: cells cross
// two TLS links, the middle node forwarding each from one to the other.
func BenchmarkLinkForward(b *testing.B) {
	mid, exit := startServer(b, newIdentity(b)), startServer(b, newIdentity(b))
	sink := &countingSink{done: make(chan struct{})}
	// middle → exit
	toExit, _ := establishPair(b, exit, mid.id, Options{Handler: sink}, Options{Handler: sink})
	// client → middle, the middle forwarding to the exit
	fwd := &forwarder{out: toExit}
	client, _ := establishPair(b, mid, nil, Options{Handler: sink}, Options{Handler: fwd})
	sink.want = int64(b.N)
	b.SetBytes(onion.CellSize)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		c := NewCell()
		c.CircID, c.Cmd = 1, onion.CellRelay
		if err := client.Send(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
	<-sink.done
	reportCells(b, start)
}
