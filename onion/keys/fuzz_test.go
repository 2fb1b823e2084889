package keys

import (
	"bytes"
	"strings"
	"testing"
)

func FuzzParseOnionCert(f *testing.F) {
	valid := testCert(f).Marshal()
	f.Add(valid)                         // valid cert
	f.Add(valid[:OnionCertLen-1])        // one byte short
	f.Add(append(bytes.Clone(valid), 0)) // one byte long
	flipped := bytes.Clone(valid)
	flipped[100] ^= 1
	f.Add(flipped) // signature bit flipped
	v2 := bytes.Clone(valid)
	v2[0] = 2
	f.Add(v2)                         // unknown version
	f.Add(make([]byte, OnionCertLen)) // all zero: version 0
	f.Add([]byte{})                   // empty
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseOnionCert(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Marshal(), b) {
			t.Fatalf("re-marshal differs:\n got %x\nwant %x", c.Marshal(), b)
		}
		_ = c.Valid(t0) // must not panic whatever the times are
	})
}

// FuzzParseKeyFile feeds the same bytes to both key-file parsers.
func FuzzParseKeyFile(f *testing.F) {
	identity := marshalIdentityFile(testIdentity(f, 1))
	onion1, onion2 := testOnionFile(f, 1), testOnionFile(f, 2)
	f.Add(identity)                                     // valid identity file
	f.Add(onion1)                                       // valid onion file, current key only
	f.Add(onion2)                                       // valid onion file, current and previous
	f.Add(identity[:40])                                // truncated identity file
	f.Add(onion2[:300])                                 // truncated onion file
	f.Add(sealKeyFile(onionMagic, []byte{0}))           // valid checksum, zero keys
	f.Add(sealKeyFile(onionMagic, []byte{3}))           // valid checksum, three keys claimed
	f.Add(sealKeyFile(identityMagic, make([]byte, 31))) // valid checksum, short seed
	f.Add(append([]byte("VEILXXK1"), identity[8:]...))  // unknown magic
	f.Add([]byte{})                                     // empty
	f.Fuzz(func(t *testing.T, b []byte) {
		if id, err := parseIdentityFile(b); err == nil {
			if got := marshalIdentityFile(id); !bytes.Equal(got, b) {
				t.Fatalf("identity re-marshal differs:\n got %x\nwant %x", got, b)
			}
		}
		if keys, err := parseOnionFile(b); err == nil {
			if got := marshalOnionFile(keys); !bytes.Equal(got, b) {
				t.Fatalf("onion re-marshal differs:\n got %x\nwant %x", got, b)
			}
		}
	})
}

// FuzzParseNodeID checks that a node ID has exactly one spelling: whatever
// ParseNodeID accepts is what String gives back, MarshalText and
// UnmarshalText agree with it, and anything else is refused with a zero ID.
// The input read as 32 raw bytes must survive String and ParseNodeID too.
func FuzzParseNodeID(f *testing.F) {
	good := testIdentity(f, 4).ID().String()
	f.Add(good)                                  // valid
	f.Add(NodeID{}.String())                     // valid: all zero
	f.Add(strings.Repeat("7", 51) + "q")         // valid: all ones
	f.Add(good[:len(good)-1] + "b")              // a spare bit of the last character set
	f.Add(strings.ToUpper(good))                 // uppercase
	f.Add(good[:51])                             // one character short
	f.Add(good + "a")                            // one character long
	f.Add(good[:51] + "=")                       // padding in place of the last character
	f.Add(good + "====")                         // base32 padding
	f.Add("0" + good[1:])                        // a character base32 lacks
	f.Add(" " + good + "\n")                     // spaces: UnmarshalText only
	f.Add(testIdentity(f, 4).ID().Short())       // the short form
	f.Add(string(make([]byte, NodeIDStringLen))) // 52 zero bytes
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseNodeID(s)
		if err != nil {
			if id != (NodeID{}) {
				t.Fatalf("ParseNodeID(%q) failed (%v) but returned %v", s, err, id)
			}
			if !strings.HasPrefix(err.Error(), "keys: node id") {
				t.Fatalf("ParseNodeID(%q): error %q lacks context", s, err)
			}
		} else {
			if got := id.String(); got != s {
				t.Fatalf("ParseNodeID(%q) = %x, whose String is %q", s, id, got)
			}
			if text, _ := id.MarshalText(); string(text) != s {
				t.Fatalf("MarshalText of ParseNodeID(%q) = %q", s, text)
			}
			if !strings.HasPrefix(s, strings.ReplaceAll(id.Short(), "-", "")) {
				t.Fatalf("Short() = %q is not a prefix of %q", id.Short(), s)
			}
		}
		var viaText NodeID
		terr := viaText.UnmarshalText([]byte(s))
		want, werr := ParseNodeID(strings.TrimSpace(s))
		if (terr == nil) != (werr == nil) || viaText != want {
			t.Fatalf("UnmarshalText(%q) = %v, %v; ParseNodeID of it trimmed = %v, %v", s, viaText, terr, want, werr)
		}

		if len(s) >= len(NodeID{}) {
			raw := NodeID([]byte(s[:len(NodeID{})]))
			back, err := ParseNodeID(raw.String())
			if err != nil || back != raw {
				t.Fatalf("ParseNodeID(%q) = %x, %v; want %x", raw.String(), back, err, raw)
			}
		}
	})
}
