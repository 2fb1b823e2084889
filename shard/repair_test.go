package shard

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// repairAll walks a share as `veil repair` does, over a local map: every
// shard missing or damaged in m is rebuilt and stored back, and the
// positions repaired are returned per kind.
func repairAll(t *testing.T, l *Link, m map[[32]byte][]byte) (map[Kind]int, error) {
	t.Helper()
	d, err := NewDecoder(l, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	repaired := map[Kind]int{}
	for {
		want, err := d.Want()
		if err == io.EOF {
			return repaired, nil
		}
		if err != nil {
			return repaired, err
		}
		shards := make([][]byte, len(want.IDs))
		for i, id := range want.IDs {
			shards[i] = m[id]
		}
		rb, err := d.Rebuild(shards)
		if err != nil {
			return repaired, err
		}
		for _, i := range rb.Missing {
			m[want.IDs[i]] = rb.All[i]
			repaired[want.Kind]++
		}
		if err := d.Add(rb.All); err != nil {
			return repaired, err
		}
	}
}

// TestRebuildRestoresEveryShard: after losing m shards of every segment
// and m head replicas, a repair recreates each lost shard byte for byte,
// and the share then survives the loss of m other shards.
func TestRebuildRestoresEveryShard(t *testing.T) {
	data := testFile(1, 3*MinSegmentSize+100)
	s := mustEncode(t, data, small, 1)
	orig := s.store()
	m := s.store()
	lost := 0
	for _, seg := range s.Segments {
		// The last M of every segment (the head: all replicas but one).
		for _, sh := range seg.Shards[len(seg.Shards)-small.M:] {
			delete(m, sh.ID)
			lost++
		}
	}
	got, err := repairAll(t, s.Link, m)
	if err != nil {
		t.Fatal(err)
	}
	if n := got[KindHead] + got[KindManifest] + got[KindData]; n != lost {
		t.Fatalf("repaired %d shards (%v), lost %d", n, got, lost)
	}
	for id, want := range orig {
		if !bytes.Equal(m[id], want) {
			t.Fatalf("shard %x differs from the original after repair", id[:4])
		}
	}
	// Full redundancy again: now lose the first M of every segment.
	for _, seg := range s.Segments {
		for _, sh := range seg.Shards[:small.M] {
			delete(m, sh.ID)
		}
	}
	out, err := decodeFrom(s.Link, m)
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("decode after repair and a second loss: %v", err)
	}
}

// TestRebuildReplacesDamagedShards: a shard of the right size but wrong
// content counts as missing and is rebuilt from the good ones.
func TestRebuildReplacesDamagedShards(t *testing.T) {
	s := mustEncode(t, testFile(2, MinSegmentSize), small, 2)
	m := s.store()
	first := s.Segments[0].Shards[0]
	bad := bytes.Clone(first.Data)
	bad[7] ^= 1
	m[first.ID] = bad
	head := s.Segments[len(s.Segments)-1].Shards[0]
	m[head.ID] = bytes.Clone(m[head.ID][:len(head.Data)-1])
	got, err := repairAll(t, s.Link, m)
	if err != nil {
		t.Fatal(err)
	}
	if got[KindData] != 1 || got[KindHead] != 1 || got[KindManifest] != 0 {
		t.Fatalf("repaired %v, want one data shard and one head replica", got)
	}
	if !bytes.Equal(m[first.ID], first.Data) || !bytes.Equal(m[head.ID], head.Data) {
		t.Fatal("a damaged shard was not restored to the original")
	}
}

// TestRebuildNeedsK: with fewer than K good shards of a segment, Rebuild
// says how many it had, as Add does.
func TestRebuildNeedsK(t *testing.T) {
	s := mustEncode(t, testFile(3, MinSegmentSize), small, 3)
	m := s.store()
	for _, sh := range s.Segments[0].Shards[:small.M+1] {
		delete(m, sh.ID)
	}
	_, err := repairAll(t, s.Link, m)
	var se *ShardsError
	if !errors.As(err, &se) || se.Kind != KindData || se.Good != small.K-1 {
		t.Fatalf("got %v, want a *ShardsError for data segment 0 with %d good", err, small.K-1)
	}
}
