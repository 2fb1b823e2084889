package dirserve

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"veil/directory"
	"veil/directory/internal/dirtest"
)

// nextConsensus is the document seed signs a minute after c: the same
// relays with other flags, and one more.
func nextConsensus(t testing.TB, seedLabel string, c *directory.Consensus) *directory.Consensus {
	t.Helper()
	entries := append([]directory.Entry(nil), c.Relays...)
	for i := range entries {
		entries[i].Flags |= directory.FlagStable
		entries[i].Weight = uint32(100 + i)
	}
	entries = append(entries, directory.Entry{Flags: dirtest.Running, Descriptor: testRelay(t, "newcomer", 9999)})
	return dirtest.SignedConsensus(t, dirtest.Identity(t, seedLabel), c.ValidAfter.Add(time.Minute), entries)
}

// TestServeDiff: a seed answers a client that names the document it holds
// with a diff that makes the newest document byte for byte.
func TestServeDiff(t *testing.T) {
	s, old := newTestServer(t)
	c := nextConsensus(t, "seed", old)
	s.Publish(c.Bytes(), c)

	for _, gz := range []bool{false, true} {
		header := []string{DiffFromHeader, hexDigest(old)}
		if gz {
			header = append(header, "Accept-Encoding", "gzip")
		}
		w := get(s.Handler(), "GET", ConsensusPath, header...)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != DiffContentType {
			t.Fatalf("gzip %v: status %d, Content-Type %q, want 200 and a diff", gz, w.Code, w.Header().Get("Content-Type"))
		}
		for k, v := range map[string]string{
			"ETag":          `W/"` + hexDigest(c) + `"`,
			"Vary":          "Accept-Encoding, " + DiffFromHeader,
			"Cache-Control": "public, max-age=120", // fresh until t0 + 2 min
			"Last-Modified": c.ValidAfter.Format(http.TimeFormat),
		} {
			if got := w.Header().Get(k); got != v {
				t.Errorf("gzip %v: %s = %q, want %q", gz, k, got, v)
			}
		}
		body := w.Body.Bytes()
		if gz {
			if w.Header().Get("Content-Encoding") != "gzip" {
				t.Fatal("asked for gzip, got none")
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if len(body) >= len(c.Bytes()) {
			t.Errorf("gzip %v: diff of %d bytes, the document is %d", gz, len(body), len(c.Bytes()))
		}
		d, err := directory.ParseDiff(body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.Apply(old)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), c.Bytes()) {
			t.Fatal("the diff does not make the newest document")
		}
	}

	// 304 still wins; a base the seed does not keep, or a name that is
	// no digest, gets the whole document.
	if w := get(s.Handler(), "GET", ConsensusPath, DiffFromHeader, hexDigest(old), "If-None-Match", `"`+hexDigest(c)+`"`); w.Code != http.StatusNotModified {
		t.Errorf("If-None-Match the newest: status %d, want 304", w.Code)
	}
	other := testConsensus(t, dirtest.Identity(t, "other"), t0, 3)
	for _, names := range []string{hexDigest(other), strings.ToUpper(hexDigest(old)), "W/\"" + hexDigest(old) + "\"", hexDigest(c)} {
		w := get(s.Handler(), "GET", ConsensusPath, DiffFromHeader, names)
		if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), c.Bytes()) {
			t.Errorf("%s %q: status %d, %d bytes; want the whole document", DiffFromHeader, names, w.Code, w.Body.Len())
		}
	}
	// Names past the MaxDiffFrom-th are not looked at.
	junk := strings.Repeat(hexDigest(other)+", ", MaxDiffFrom)
	if w := get(s.Handler(), "GET", ConsensusPath, DiffFromHeader, junk+hexDigest(old)); w.Header().Get("Content-Type") == DiffContentType {
		t.Errorf("a diff from the %d-th name", MaxDiffFrom+1)
	}
	if w := get(s.Handler(), "GET", ConsensusPath, DiffFromHeader, hexDigest(other)+", "+hexDigest(old)); w.Header().Get("Content-Type") != DiffContentType {
		t.Error("no diff from the second name")
	}
}

// TestBasesBounded: a server keeps bases for DiffBaseAge and at most
// MaxDiffBases, and entries are shared among bases.
func TestBasesBounded(t *testing.T) {
	seed := dirtest.Identity(t, "seed")
	c := testConsensus(t, seed, t0, 2)
	b := NewBases()
	b.Add(c, t0.Add(DiffBaseAge+time.Second))
	if b.Len() != 0 {
		t.Fatal("kept a base older than DiffBaseAge")
	}
	b.Add(c, t0)
	b.Add(c, t0)
	if b.Len() != 1 || b.Get(c.Digest()) == nil {
		t.Fatalf("%d bases after adding one twice", b.Len())
	}
	var last *directory.Consensus
	for i := range MaxDiffBases + 10 {
		last = dirtest.SignedConsensus(t, seed, t0.Add(time.Duration(i+1)*time.Second), c.Relays)
		b.Add(last, t0)
	}
	if b.Len() != MaxDiffBases || b.Get(c.Digest()) != nil || b.Get(last.Digest()) == nil {
		t.Fatalf("%d bases, want the newest %d", b.Len(), MaxDiffBases)
	}
	if x, y := b.Get(last.Digest()), b.list[0].base; x.Entries[0] != y.Entries[0] {
		t.Error("bases listing one descriptor do not share its entry")
	}
	late := dirtest.SignedConsensus(t, seed, t0.Add(DiffBaseAge+time.Hour), c.Relays)
	b.Add(late, late.ValidAfter)
	if b.Len() != 1 {
		t.Fatalf("%d bases once the others are past DiffBaseAge, want 1", b.Len())
	}
}

func TestDiffFromHeader(t *testing.T) {
	d := strings.Repeat("ab", 32)
	got := diffFrom([]string{d + " ,nope, " + strings.Repeat("cd", 32), d})
	if len(got) != 3 || fmt.Sprintf("%x", got[1]) != strings.Repeat("cd", 32) {
		t.Fatalf("diffFrom = %x", got)
	}
}
