package keys

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func testOnionFile(t testing.TB, n int) []byte {
	id := testIdentity(t, 1)
	keys := []*OnionKey{testOnionKey(t, id, 2, t0.Add(DefaultRotateEvery))}
	if n > 1 {
		keys = append(keys, testOnionKey(t, id, 3, t0))
	}
	return marshalOnionFile(keys)
}

func TestIdentityFileRoundTrip(t *testing.T) {
	id := testIdentity(t, 1)
	b := marshalIdentityFile(id)
	if len(b) != identityFileLen || identityFileLen != 72 || string(b[:8]) != "VEILIDK1" {
		t.Fatalf("file is %d bytes starting %q", len(b), b[:8])
	}
	got, err := parseIdentityFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != id.ID() || !bytes.Equal(marshalIdentityFile(got), b) {
		t.Fatal("round trip changed the identity")
	}
}

func TestOnionFileRoundTrip(t *testing.T) {
	for n, wantLen := range map[int]int{1: 218, 2: 395} {
		b := testOnionFile(t, n)
		if len(b) != wantLen || string(b[:8]) != "VEILONK1" || int(b[8]) != n {
			t.Fatalf("%d keys: file is %d bytes, want %d", n, len(b), wantLen)
		}
		keys, err := parseOnionFile(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != n || !bytes.Equal(marshalOnionFile(keys), b) {
			t.Fatalf("%d keys: round trip differs", n)
		}
	}
}

// Every way a file can be damaged must be refused, with a message that says
// which way.
func TestKeyFilesRejectDamage(t *testing.T) {
	parsers := map[string]struct {
		file  []byte
		parse func([]byte) error
	}{
		"identity": {marshalIdentityFile(testIdentity(t, 1)), func(b []byte) error { _, err := parseIdentityFile(b); return err }},
		"onion":    {testOnionFile(t, 2), func(b []byte) error { _, err := parseOnionFile(b); return err }},
	}
	for name, p := range parsers {
		for n := range len(p.file) {
			err := p.parse(p.file[:n])
			if err == nil || !strings.Contains(err.Error(), "truncated") {
				t.Fatalf("%s truncated to %d bytes: err = %v", name, n, err)
			}
		}
		if err := p.parse(append(bytes.Clone(p.file), 0)); err == nil {
			t.Fatalf("%s: accepted a trailing byte", name)
		}
		for i := range len(p.file) {
			m := bytes.Clone(p.file)
			m[i] ^= 0x40
			err := p.parse(m)
			if err == nil {
				t.Fatalf("%s: accepted byte %d flipped", name, i)
			}
			if i >= magicLen && !(i == magicLen && name == "onion") && !strings.Contains(err.Error(), "checksum") {
				t.Fatalf("%s: byte %d flipped: err = %v, want checksum mismatch", name, i, err)
			}
		}
	}
	// Each file's magic is refused by the other parser.
	if _, err := parseOnionFile(parsers["identity"].file); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Fatalf("identity file as onion file: err = %v", err)
	}
	if _, err := parseIdentityFile(parsers["onion"].file); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Fatalf("onion file as identity file: err = %v", err)
	}
}

// Files with a correct checksum can still be wrong inside.
func TestOnionFileRejectsBadContents(t *testing.T) {
	id, other := testIdentity(t, 1), testIdentity(t, 9)
	k1 := testOnionKey(t, id, 2, t0)
	k2 := testOnionKey(t, id, 3, t0.Add(time.Hour))
	foreign := testOnionKey(t, other, 4, t0)
	entry := func(k *OnionKey) []byte {
		priv := k.Private()
		return append(priv[:], k.Cert().Marshal()...)
	}
	// k2's private key beside k1's cert.
	swapped := append(append([]byte(nil), entry(k2)[:32]...), entry(k1)[32:]...)
	for name, c := range map[string]struct {
		body []byte
		want string
	}{
		"no count":              {nil, "no key count"},
		"zero keys":             {[]byte{0}, "holds 0 keys"},
		"three keys":            {append(append(append([]byte{3}, entry(k1)...), entry(k2)...), entry(k1)...), "holds 3 keys"},
		"count says 2, has 1":   {append([]byte{2}, entry(k1)...), "truncated"},
		"count says 1, has 2":   {append(append([]byte{1}, entry(k1)...), entry(k2)...), "for 1 keys"},
		"private key mismatch":  {append([]byte{1}, swapped...), "does not match"},
		"two identities":        {append(append([]byte{2}, entry(k1)...), entry(foreign)...), "another identity"},
		"bad cert in 2nd entry": {append(append([]byte{2}, entry(k1)...), append(entry(k2)[:32], make([]byte, OnionCertLen)...)...), "key 2: cert"},
	} {
		_, err := parseOnionFile(sealKeyFile(onionMagic, c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
	}
}
