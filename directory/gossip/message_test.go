package gossip

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func validMessages() []message {
	var d [DigestSize]byte
	for i := range d {
		d[i] = byte(i)
	}
	return []message{
		{Type: msgRequest, Digest: d, Name: "n"},
		{Type: msgRequest, Digest: d, Name: strings.Repeat("x", MaxNameSize)},
		{Type: msgResponse, Digest: d, Descriptor: []byte{0}},
		{Type: msgResponse, Digest: d, Descriptor: bytes.Repeat([]byte{0xaa}, MaxDescriptorSize)},
		{Type: msgNotFound, Digest: d},
		{Type: msgLeaving, Digest: d, Name: "leaver"},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range validMessages() {
		b, err := m.marshal()
		if err != nil {
			t.Fatalf("marshal %d: %v", m.Type, err)
		}
		got, err := parseMessage(b)
		if err != nil {
			t.Fatalf("parse %d: %v", m.Type, err)
		}
		if got.Type != m.Type || got.Digest != m.Digest || got.Name != m.Name || !bytes.Equal(got.Descriptor, m.Descriptor) {
			t.Errorf("round trip of type %d changed it", m.Type)
		}
		// Every truncation is refused, and so is a trailing byte.
		for i := range len(b) {
			if _, err := parseMessage(b[:i]); err == nil {
				t.Errorf("type %d truncated to %d of %d bytes parsed", m.Type, i, len(b))
			}
		}
		if _, err := parseMessage(append(b, 0)); err == nil {
			t.Errorf("type %d with a trailing byte parsed", m.Type)
		}
	}
}

func TestMessageRefused(t *testing.T) {
	for _, m := range []message{
		{Type: msgRequest},
		{Type: msgRequest, Name: strings.Repeat("x", MaxNameSize+1)},
		{Type: msgResponse},
		{Type: msgResponse, Descriptor: make([]byte, MaxDescriptorSize+1)},
		{Type: 0},
		{Type: 5},
	} {
		if _, err := m.marshal(); err == nil {
			t.Errorf("marshal accepted type %d, name %d bytes, descriptor %d bytes", m.Type, len(m.Name), len(m.Descriptor))
		}
	}
	var d [DigestSize]byte
	hdr := append([]byte{msgResponse}, d[:]...)
	for _, b := range [][]byte{
		nil,
		make([]byte, maxMessageSize+1),
		append(append([]byte{msgRequest}, d[:]...), 0),                                   // empty name
		append(append([]byte{}, hdr...), 0, 0, 0, 0),                                     // empty descriptor
		append(append(append([]byte{}, hdr...), 0, 0, 0x60, 1), make([]byte, 0x6001)...), // 24 KiB + 1
		append(append(append([]byte{}, hdr...), 0xff, 0xff, 0xff, 0xff), 1),              // absurd length
		append([]byte{9}, d[:]...),                                                       // unknown type
	} {
		if _, err := parseMessage(b); err == nil {
			t.Errorf("parsed %d bytes starting %x", len(b), b[:min(len(b), 40)])
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	entries := []stateEntry{
		{Name: "a", Pointer: []byte("p")},
		{Name: strings.Repeat("n", MaxNameSize), Pointer: bytes.Repeat([]byte{1}, MaxPointerSize)},
	}
	b := marshalState(entries)
	got, err := parseState(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(entries) {
		t.Fatalf("%d entries, want %d", len(got), len(entries))
	}
	for i := range got {
		if got[i].Name != entries[i].Name || !bytes.Equal(got[i].Pointer, entries[i].Pointer) {
			t.Errorf("entry %d changed", i)
		}
	}
	for i := range len(b) {
		if _, err := parseState(b[:i]); err == nil {
			t.Errorf("state truncated to %d of %d bytes parsed", i, len(b))
		}
	}
	if _, err := parseState(append(b, 0)); err == nil {
		t.Error("state with a trailing byte parsed")
	}

	// Invalid entries are skipped and the size stays bounded.
	many := []stateEntry{{Name: "", Pointer: []byte("p")}, {Name: "x", Pointer: nil}}
	for range 1000 {
		many = append(many, stateEntry{Name: strings.Repeat("n", 64), Pointer: bytes.Repeat([]byte{2}, 200)})
	}
	b = marshalState(many)
	if len(b) > maxStateBytes {
		t.Errorf("state of %d bytes, limit %d", len(b), maxStateBytes)
	}
	got, err = parseState(b)
	if err != nil || len(got) == 0 || got[0].Name == "" {
		t.Errorf("bounded state: %d entries, %v", len(got), err)
	}
}

// FuzzParseMessage checks that the parser never panics, bounds what it
// accepts, and that whatever it accepts re-encodes to the same bytes.
func FuzzParseMessage(f *testing.F) {
	seed := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	digest := strings.Repeat("ab", DigestSize)
	// Valid: a request from "n1".
	f.Add(seed("01" + digest + "02 6e31"))
	// Valid: a response with the 3-byte descriptor "abc".
	f.Add(seed("02" + digest + "00000003 616263"))
	// Valid: not found.
	f.Add(seed("03" + digest))
	// Valid: a leaving notice from "n1".
	f.Add(seed("04" + digest + "02 6e31"))
	// Invalid: a request whose name length overruns.
	f.Add(seed("01" + digest + "05 6e31"))
	// Invalid: a response claiming 24 KiB + 1.
	f.Add(seed("02" + digest + "00006001 00"))
	// Invalid: not found with a trailing byte.
	f.Add(seed("03" + digest + "00"))
	// Invalid: an unknown type.
	f.Add(seed("07" + digest))
	// Invalid: empty.
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMessage(b)
		if err != nil {
			return
		}
		if len(m.Descriptor) > MaxDescriptorSize || len(m.Name) > MaxNameSize {
			t.Fatalf("accepted an oversized message")
		}
		again, err := m.marshal()
		if err != nil {
			t.Fatalf("parsed but does not marshal: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}

// FuzzParseState does the same for the push/pull backstop state.
func FuzzParseState(f *testing.F) {
	f.Add(marshalState([]stateEntry{{Name: "a", Pointer: []byte("a:1:00")}})) // valid: one entry
	f.Add(marshalState(nil))                                                  // valid: no entries
	f.Add([]byte{stateVersion, 0xff, 0xff})                                   // invalid: count overruns
	f.Add([]byte{2, 0, 0})                                                    // invalid: unknown version
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := parseState(b)
		if err != nil {
			return
		}
		if again := marshalState(entries); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}
