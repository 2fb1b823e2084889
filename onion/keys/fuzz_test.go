package keys

import (
	"bytes"
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
