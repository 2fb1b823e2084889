package keys

import (
	"crypto/sha256"
	"regexp"
	"strings"
	"testing"
)

func TestNodeIDDerivation(t *testing.T) {
	id := testIdentity(t, 1)
	want := sha256.Sum256(append([]byte("veil node id v1"), id.Public()...))
	if id.ID() != NodeID(want) || NodeIDFromIdentity(id.Public()) != NodeID(want) {
		t.Fatalf("node id = %x, want %x", id.ID(), want)
	}
}

func TestNodeIDStringRoundTrip(t *testing.T) {
	for seed := range byte(20) {
		id := testIdentity(t, seed).ID()
		s := id.String()
		if len(s) != NodeIDStringLen || s != strings.ToLower(s) || strings.Contains(s, "=") {
			t.Fatalf("String() = %q: want 52 lowercase chars, no padding", s)
		}
		got, err := ParseNodeID(s)
		if err != nil || got != id {
			t.Fatalf("ParseNodeID(%q) = %v, %v; want %v", s, got, err, id)
		}
		var viaText NodeID
		text, _ := id.MarshalText()
		if err := viaText.UnmarshalText(text); err != nil || viaText != id {
			t.Fatalf("text round trip: %v, %v", viaText, err)
		}
	}
}

func TestNodeIDShort(t *testing.T) {
	shape := regexp.MustCompile(`^[a-z2-7]{5}-[a-z2-7]{5}-[a-z2-7]{3}$`)
	id := testIdentity(t, 3).ID()
	short := id.Short()
	if !shape.MatchString(short) {
		t.Fatalf("Short() = %q, want xxxxx-xxxxx-xxx", short)
	}
	if !strings.HasPrefix(id.String(), strings.ReplaceAll(short, "-", "")) {
		t.Fatalf("Short() = %q is not a prefix of %q", short, id.String())
	}
	if _, err := ParseNodeID(short); err == nil {
		t.Fatal("ParseNodeID accepted a short id")
	}
}

func TestParseNodeIDRejects(t *testing.T) {
	good := testIdentity(t, 4).ID().String()
	// The last character holds 1 data bit then 4 zero bits, so it is 'a'
	// (00000) or 'q' (10000); 'b' (00001) sets a spare bit.
	nonCanonical := good[:len(good)-1] + "b"
	for name, s := range map[string]string{
		"empty":          "",
		"short":          good[:51],
		"long":           good + "a",
		"uppercase":      strings.ToUpper(good),
		"padding":        good[:51] + "=",
		"bad char":       "0" + good[1:],
		"dashes":         good[:5] + "-" + good[6:],
		"non-canonical":  nonCanonical,
		"base32 padding": good + "====",
	} {
		if _, err := ParseNodeID(s); err == nil {
			t.Errorf("%s: ParseNodeID(%q) succeeded", name, s)
		} else if !strings.HasPrefix(err.Error(), "keys: node id") {
			t.Errorf("%s: error %q lacks context", name, err)
		}
	}
}
