package shard

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func testLink() *Link {
	l := &Link{Params: TestnetParams}
	for i := range l.FileKey {
		l.FileKey[i], l.Root[i] = byte(i), byte(0xff-i)
	}
	return l
}

func TestLinkRoundTrip(t *testing.T) {
	for _, p := range []Params{TestnetParams, DefaultParams, small, {K: 1, M: 255, SegmentSize: MaxSegmentSize}} {
		l := testLink()
		l.Params = p
		s := l.String()
		if len(s) != LinkLen || len(s) >= 200 || !strings.HasPrefix(s, "veil:") {
			t.Fatalf("link %q: %d characters", s, len(s))
		}
		got, err := ParseLink(s)
		if err != nil {
			t.Fatal(err)
		}
		if *got != *l || got.String() != s {
			t.Fatalf("round trip: %+v", got)
		}
	}
	t.Logf("%s (%d characters)", testLink(), LinkLen)
}

func TestLinkEveryCharacterChanged(t *testing.T) {
	s := testLink().String()
	for i := range s {
		for _, c := range []byte{'a', 'q', '2', '7', '1', 'A', ':', ' '} {
			if s[i] == c {
				continue
			}
			bad := s[:i] + string(c) + s[i+1:]
			_, err := ParseLink(bad)
			if !errors.Is(err, ErrBadLink) {
				t.Fatalf("position %d changed to %q: accepted", i, c)
			}
			if i == 0 && c == 'a' {
				t.Log(err)
			}
		}
	}
	_, err := ParseLink(s[:20] + "x" + s[21:])
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch: the link is damaged or mistyped") {
		t.Fatalf("typo: %v", err)
	}
	t.Log(err)
	_, err = ParseLink(s[:20] + "1" + s[21:])
	if err == nil || !strings.Contains(err.Error(), "character 21 ('1')") {
		t.Fatalf("bad character: %v", err)
	}
	t.Log(err)
}

func TestLinkTruncatedAndExtended(t *testing.T) {
	s := testLink().String()
	for n := 0; n < len(s); n++ {
		if _, err := ParseLink(s[:n]); !errors.Is(err, ErrBadLink) {
			t.Fatalf("prefix of %d characters accepted", n)
		}
	}
	for _, bad := range []string{s + "a", s + "aaaaaaaa", " " + s, s + "\n", strings.ToUpper(s), "veil:" + strings.Repeat("a", 10000)} {
		if _, err := ParseLink(bad); !errors.Is(err, ErrBadLink) {
			t.Fatalf("%q accepted", bad)
		}
	}
}

func TestLinkVersionAndParams(t *testing.T) {
	l := testLink()
	b := l.marshal()
	b[0] = 2
	resum(b)
	_, err := ParseLink(LinkPrefix + linkEncoding.EncodeToString(b))
	if !errors.Is(err, ErrBadLink) || !strings.Contains(err.Error(), "upgrade veil") {
		t.Fatalf("version 2: %v", err)
	}
	b = l.marshal()
	b[1] = 0 // k = 0
	resum(b)
	if _, err := ParseLink(LinkPrefix + linkEncoding.EncodeToString(b)); !errors.Is(err, ErrBadLink) {
		t.Fatalf("k=0: %v", err)
	}
}

func resum(b []byte) {
	s := sha256Sum(b[:len(b)-linkChecksumSize])
	copy(b[len(b)-linkChecksumSize:], s[:linkChecksumSize])
}

func TestLinkRedacted(t *testing.T) {
	l := testLink()
	r := l.Redacted()
	body := strings.TrimPrefix(l.String(), LinkPrefix)
	for i := 0; i+6 <= len(body); i++ {
		if strings.Contains(r, body[i:i+6]) {
			t.Fatalf("redacted %q shows part of the link", r)
		}
	}
	l2 := testLink()
	l2.FileKey[0] ^= 1
	if l2.Redacted() == r {
		t.Fatal("fingerprints of different links agree")
	}
}

func FuzzParseLink(f *testing.F) {
	l := testLink()
	f.Add(l.String()) // valid: testnet params
	l.Params = DefaultParams
	f.Add(l.String())                               // valid: default params
	f.Add("veil:")                                  // empty body
	f.Add(l.String()[:60])                          // truncated
	f.Add(l.String() + "a")                         // one character too many
	f.Add(strings.Replace(l.String(), "a", "b", 1)) // typo
	f.Add("veil:" + strings.Repeat("a", LinkLen-5)) // right length, bad checksum
	f.Add("http://example.com/")                    // not a link
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLink(s)
		if err != nil {
			if !errors.Is(err, ErrBadLink) {
				t.Fatalf("error not ErrBadLink: %v", err)
			}
			return
		}
		if l.String() != s {
			t.Fatalf("re-marshal: %q != %q", l.String(), s)
		}
	})
}

// TestLinkNeverLogged: slog prints a link's fingerprint, not the link.
func TestLinkNeverLogged(t *testing.T) {
	s := mustEncode(t, testFile(9, 10), small, 9)
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).Info("shared", "link", s.Link)
	if strings.Contains(b.String(), s.Link.String()[len(LinkPrefix):len(LinkPrefix)+20]) || !strings.Contains(b.String(), "redacted") {
		t.Fatalf("logged %q", b.String())
	}
}
