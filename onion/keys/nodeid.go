package keys

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"
)

// NodeIDLabel separates node-ID hashing from every other use of SHA-256 over
// an identity key; bump the version if the derivation ever changes.
const NodeIDLabel = "veil node id v1"

const (
	// NodeIDStringLen is the length of NodeID.String: 256 bits in base32.
	NodeIDStringLen = 52
	// shortIDChars is how much of the full form Short keeps: 65 bits, far
	// more than a human ever compares and still enough to tell the nodes of
	// a network apart.
	shortIDChars = 13
)

// nodeIDEncoding is RFC 4648 base32 in lowercase without padding: it has no
// look-alike digits (0/1/8 are absent) and is safe in file names and URLs.
var nodeIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NodeID names a node: SHA-256(NodeIDLabel || Ed25519 identity public key).
type NodeID [32]byte

// NodeIDFromIdentity derives the ID of the node with identity key pub.
func NodeIDFromIdentity(pub ed25519.PublicKey) NodeID {
	h := sha256.New()
	h.Write([]byte(NodeIDLabel))
	h.Write(pub)
	var id NodeID
	h.Sum(id[:0])
	return id
}

// String returns the full ID: 52 lowercase base32 characters.
func (id NodeID) String() string { return nodeIDEncoding.EncodeToString(id[:]) }

// Short returns the first 13 characters of String in groups of 5-5-3,
// like "abcde-fghij-klm", for logs and UIs. Removing the dashes gives a
// prefix of the full form, so a short ID can be searched for in full ones.
// It is not unique enough to be parsed back or trusted.
func (id NodeID) Short() string {
	s := id.String()[:shortIDChars]
	return s[0:5] + "-" + s[5:10] + "-" + s[10:13]
}

// ParseNodeID parses the form String produces, and only that form, so every
// node ID has exactly one spelling.
func ParseNodeID(s string) (NodeID, error) {
	var id NodeID
	if len(s) != NodeIDStringLen {
		return id, fmt.Errorf("keys: node id %q: %d characters, want %d", s, len(s), NodeIDStringLen)
	}
	b, err := nodeIDEncoding.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("keys: node id %q: not lowercase base32", s)
	}
	copy(id[:], b)
	// base32 ignores the 4 spare bits of the last character; refuse
	// non-zero ones so two strings never name the same node.
	if id.String() != s {
		return NodeID{}, fmt.Errorf("keys: node id %q: not in canonical form", s)
	}
	return id, nil
}

// MarshalText lets a NodeID appear in TOML and JSON in its full form.
func (id NodeID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText accepts what MarshalText produces.
func (id *NodeID) UnmarshalText(b []byte) error {
	v, err := ParseNodeID(strings.TrimSpace(string(b)))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
