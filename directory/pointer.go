package directory

// A Pointer is the signed record a node puts in its memberlist metadata.
// Layout (SPEC.md §3), integers big-endian:
//
//	size     field
//	1        version = pointerVersion (1)
//	32       identity: Ed25519 public key
//	8        sequence of the descriptor it names
//	32       digest: SHA-256 of that signed descriptor
//	1 + n    gossip node name: n (1..64) bytes of printable ASCII
//	7 or 19  gossip address: type (1) | IPv4 (4) or IPv6 (16) | port (2)
//	64       signature: Ed25519 by identity over
//	         PointerLabel || 0x00 || every byte above
//
// Versions are append-only; a new layout gets a new version and label.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"

	"veil/onion/keys"
)

const (
	// PointerLabel is the signature label of a pointer.
	PointerLabel = "veil pointer v1"

	pointerVersion = 1
	pointerFixed   = 1 + ed25519.PublicKeySize + 8 + sha256.Size + 1 + ed25519.SignatureSize

	// MaxPointerLen is the largest pointer: 221 bytes, with a 64-byte node
	// name and an IPv6 address. A node ID as name and IPv4 give 197.
	MaxPointerLen = pointerFixed + MaxGossipNameLen + addrPortMaxLen
	minPointerLen = pointerFixed + 1 + addrPortMinLen

	// MemberlistMetaMaxSize is memberlist's limit on node metadata; it
	// panics beyond it. Pointers fit with room to spare.
	MemberlistMetaMaxSize = 512
)

// A compile-time check that the largest pointer fits memberlist's metadata.
var _ [MemberlistMetaMaxSize - MaxPointerLen]struct{}

// Pointer names a node's current descriptor and binds its memberlist name
// and address to its identity, so that no other memberlist node can speak
// for that identity. A receiver keeps the highest sequence it has seen per
// identity and ignores pointers with a lower one (replays).
type Pointer struct {
	IdentityKey ed25519.PublicKey // filled in by Sign
	Sequence    uint64
	Digest      [32]byte
	GossipName  string
	GossipAddr  netip.AddrPort
	Signature   [ed25519.SignatureSize]byte
}

// Sign fills in the identity key, checks the fields, signs p with id and
// returns its encoding.
func (p *Pointer) Sign(id *keys.Identity) ([]byte, error) {
	p.IdentityKey = id.Public()
	if err := p.check("sign"); err != nil {
		return nil, err
	}
	body := p.appendBody(make([]byte, 0, MaxPointerLen))
	copy(p.Signature[:], id.Sign(PointerLabel, body))
	return append(body, p.Signature[:]...), nil
}

// Marshal re-encodes p from its fields, signature included.
func (p *Pointer) Marshal() ([]byte, error) {
	if err := p.check("marshal"); err != nil {
		return nil, err
	}
	return append(p.appendBody(make([]byte, 0, MaxPointerLen)), p.Signature[:]...), nil
}

// NodeID returns the ID of the node the pointer speaks for.
func (p *Pointer) NodeID() keys.NodeID { return keys.NodeIDFromIdentity(p.IdentityKey) }

// ParsePointer parses a pointer and checks its signature. It has no time:
// sequence numbers order pointers.
func ParsePointer(b []byte) (*Pointer, error) {
	if len(b) > MaxPointerLen {
		return nil, errorf(ErrTooLarge, "directory: parse pointer: %d bytes, at most %d", len(b), MaxPointerLen)
	}
	if len(b) < minPointerLen {
		return nil, malformedf("directory: parse pointer: %d bytes, at least %d", len(b), minPointerLen)
	}
	c := &cursor{b: b, doc: "pointer"}
	p := &Pointer{}
	if v := c.u8("version"); v != pointerVersion {
		c.fail("unknown version %d", v)
	}
	p.IdentityKey = bytes.Clone(c.take(ed25519.PublicKeySize, "identity"))
	p.Sequence = c.u64("sequence")
	copy(p.Digest[:], c.take(sha256.Size, "digest"))
	p.GossipName = string(c.take(int(c.u8("gossip name length")), "gossip name"))
	p.GossipAddr = c.addrPort("gossip address")
	copy(p.Signature[:], c.take(ed25519.SignatureSize, "signature"))
	if err := c.end(); err != nil {
		return nil, err
	}
	if err := p.check("parse"); err != nil {
		return nil, err
	}
	if !keys.Verify(p.IdentityKey, PointerLabel, b[:len(b)-ed25519.SignatureSize], p.Signature[:]) {
		return nil, errorf(ErrBadSignature, "directory: parse pointer of %s: bad signature", p.NodeID().Short())
	}
	return p, nil
}

// Matches checks that d is the descriptor p names: same identity, sequence,
// digest, gossip name and address. A node checks this for every descriptor
// it fetches because of a pointer (SPEC.md §4).
func (p *Pointer) Matches(d *Descriptor) error {
	fail := func(what string) error {
		return errorf(ErrMismatch, "directory: descriptor of %s does not match its pointer: %s", p.NodeID().Short(), what)
	}
	switch {
	case !bytes.Equal(p.IdentityKey, d.IdentityKey):
		return fail("identity")
	case p.Sequence != d.Sequence:
		return fail("sequence")
	case p.Digest != d.Digest():
		return fail("digest")
	case p.GossipName != d.GossipName:
		return fail("gossip name")
	case p.GossipAddr != d.GossipAddr:
		return fail("gossip address")
	}
	return nil
}

// Binds checks that p belongs to the memberlist node with this name and
// address, and that the name is p's node ID (SPEC.md §4): the pointer is
// signed by the identity key, so it proves that key holds the name at that
// address. A pointer copied into another node's metadata is refused, and
// so is one whose key does not hash to the name: nobody can take another
// relay's name while it is away, and a new key never inherits an old
// name's membership (uptime, flags).
func (p *Pointer) Binds(name string, addr netip.AddrPort) error {
	if p.GossipName != name || p.GossipAddr != netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port()) {
		return errorf(ErrMismatch, "directory: pointer of %s names node %q at %s, not %q at %s",
			p.NodeID().Short(), p.GossipName, p.GossipAddr, name, addr)
	}
	if id := p.NodeID().String(); name != id {
		return errorf(ErrMismatch, "directory: node %q carries the pointer of %s: a member's name is its node ID",
			name, p.NodeID().Short())
	}
	return nil
}

func (p *Pointer) check(op string) error {
	fail := func(format string, args ...any) error {
		return malformedf("directory: "+op+" pointer: "+format, args...)
	}
	if len(p.IdentityKey) != ed25519.PublicKeySize {
		return fail("identity key is %d bytes, want %d", len(p.IdentityKey), ed25519.PublicKeySize)
	}
	if msg := checkGossipName(p.GossipName); msg != "" {
		return fail("gossip name: %s", msg)
	}
	if msg := checkAddrPort(p.GossipAddr); msg != "" {
		return fail("gossip address: %s", msg)
	}
	return nil
}

func (p *Pointer) appendBody(b []byte) []byte {
	b = append(b, pointerVersion)
	b = append(b, p.IdentityKey...)
	b = binary.BigEndian.AppendUint64(b, p.Sequence)
	b = append(b, p.Digest[:]...)
	b = append(append(b, byte(len(p.GossipName))), p.GossipName...)
	return appendAddrPort(b, p.GossipAddr)
}
