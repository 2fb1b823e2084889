package directory

// A Descriptor is a relay's self-signed description of itself. Layout
// (SPEC.md §2), integers big-endian:
//
//	size         field
//	1            version: 1, or 2 when the next field is there
//	32           identity: Ed25519 public key
//	145          onion cert (onion/keys/SPEC.md §2), signed by identity
//	1 + n        nickname: n (1..19), n bytes of [A-Za-z0-9]
//	7 or 19      OR address: type (1) | IPv4 (4) or IPv6 (16) | port (2)
//	19           version 2 only: IPv6 OR address beside an IPv4 one
//	1 + n        gossip node name: n (1..64), n bytes of printable ASCII
//	7 or 19      gossip address, as the OR address
//	1            roles: bit 0 Exit, bit 1 Storage, others zero
//	2 + …        exit rules: count (0..256), then per rule len (1, 1..64)
//	             and the canonical rule text (conf/exitpolicy)
//	8            storage capacity in bytes
//	8            bandwidth estimate in bytes per second
//	2            protocol version (onion.ProtocolVersion), non-zero
//	1 + 32·n     family: n (0..16) node IDs, strictly ascending
//	2 + n        contact: n (0..256) bytes of UTF-8
//	8            sequence number
//	8            published: unix seconds, two's complement
//	8            expires: unix seconds, two's complement
//	64           signature: Ed25519 by identity over
//	             the version's label || 0x00 || every byte above
//
// Versions are append-only; a new layout gets a new version and label. A
// relay signs version 1 unless it has an IPv6 OR address beside an IPv4
// one, so nodes that know only version 1 still use every other relay.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"slices"
	"time"

	"veil/conf/exitpolicy"
	"veil/onion/keys"
)

const (
	// DescriptorLabel is the signature label of a version 1 descriptor.
	DescriptorLabel = "veil descriptor v1"
	// DescriptorLabelV2 is the label of a version 2 descriptor, which
	// carries a second, IPv6, OR address (SPEC.md §2.1).
	DescriptorLabelV2 = "veil descriptor v2"

	// ClockSkew is how far in the future a document may start and still be
	// accepted, because relays', seeds' and clients' clocks disagree a
	// little. It equals keys.CertClockSkew so a descriptor and its cert
	// become usable together.
	ClockSkew = keys.CertClockSkew

	// DefaultDescriptorLifetime is what a relay should give its descriptor:
	// Tor's republication period. A relay republishes at half of it, or at
	// once when anything in it changes.
	DefaultDescriptorLifetime = 18 * time.Hour
	// MaxDescriptorLifetime bounds expires − published, so a stale
	// descriptor (old address, old onion key) stops being accepted within
	// two days even if it is replayed, while a relay cut off from its seeds
	// for a day keeps a valid descriptor.
	MaxDescriptorLifetime = 48 * time.Hour

	MaxNicknameLen   = 19  // Tor's limit, and conf.SeedPin's
	MaxGossipNameLen = 64  // fits a node ID's 52 characters with room
	MaxExitRules     = 256 // far above real policies' tens of rules (G9)
	MaxFamily        = 16  // seeds cap families at fewer (conf max_relays_per_family)
	MaxContactLen    = 256 // conf's limit for the contact line

	// maxRuleLen is the longest canonical exit rule:
	// "reject [" + 39-char IPv6 + "]/127:65534-65535" = 64 bytes.
	maxRuleLen = 64

	// Versions (append-only): 1, and 2 for a descriptor with an IPv6 OR
	// address beside its IPv4 one.
	descriptorVersion   = 1
	descriptorVersionV6 = 2

	// MaxDescriptorLen is the largest valid encoding: 17828 bytes, of
	// which 16642 are a full 256-rule exit policy. A typical descriptor is
	// about 400 bytes. The consensus stores a descriptor's length in 2
	// bytes, which this fits. The longest OR addresses are version 2's
	// IPv4 and IPv6 pair (7 + 19 bytes).
	MaxDescriptorLen = 1 + ed25519.PublicKeySize + keys.OnionCertLen +
		1 + MaxNicknameLen + addrPortMinLen + addrPortMaxLen + 1 + MaxGossipNameLen + addrPortMaxLen +
		1 + 2 + MaxExitRules*(1+maxRuleLen) + 8 + 8 + 2 +
		1 + MaxFamily*len(keys.NodeID{}) + 2 + MaxContactLen + 8 + 8 + 8 + ed25519.SignatureSize
	// minDescriptorLen is the smallest: one-byte names, IPv4, nothing optional.
	minDescriptorLen = 1 + ed25519.PublicKeySize + keys.OnionCertLen +
		2 + addrPortMinLen + 2 + addrPortMinLen + 1 + 2 + 8 + 8 + 2 + 1 + 2 + 8 + 8 + 8 +
		ed25519.SignatureSize
)

// Roles are the services a relay offers beyond carrying circuits. The bits
// are append-only.
type Roles uint8

const (
	RoleExit    Roles = 1 << 0 // connects to the internet under its exit policy
	RoleStorage Roles = 1 << 1 // keeps shards within its storage capacity
	// RoleSeed marks the descriptor a seed gossips about itself, so that
	// seeds are members of the gossip cluster like relays. A seed carries
	// no circuits: it has no other role, and no consensus lists it.
	RoleSeed Roles = 1 << 2

	knownRoles = RoleExit | RoleStorage | RoleSeed
)

// Descriptor is what a relay says about itself. Build one, call Sign, and
// publish the bytes; ParseDescriptor gives it back. Times have second
// resolution. Once signed or parsed, treat it as read-only: Digest and Bytes
// return the encoding kept at that moment.
type Descriptor struct {
	IdentityKey     ed25519.PublicKey // filled in by Sign
	OnionCert       *keys.OnionCert   // signed by IdentityKey, valid from Published to Expires
	Nickname        string            // 1..MaxNicknameLen of [A-Za-z0-9]; not unique
	ORAddr          netip.AddrPort    // where circuits are made
	ORAddrV6        netip.AddrPort    // an IPv6 OR address beside an IPv4 ORAddr (version 2); zero when none
	GossipName      string            // the memberlist node name
	GossipAddr      netip.AddrPort    // the memberlist address
	Roles           Roles             // RoleExit, RoleStorage
	Policy          exitpolicy.Policy // exit rules; empty unless Roles has RoleExit
	StorageCapacity uint64            // bytes; 0 unless Roles has RoleStorage
	Bandwidth       uint64            // estimated bytes per second
	ProtocolVersion uint16            // onion.ProtocolVersion the relay speaks
	Family          []keys.NodeID     // the operator's other relays, ascending
	Contact         string            // how to reach the operator; public
	Sequence        uint64            // grows with each descriptor the relay signs
	Published       time.Time
	Expires         time.Time
	Signature       [ed25519.SignatureSize]byte

	raw    []byte // the signed encoding, set by Sign and parse
	id     keys.NodeID
	digest [sha256.Size]byte
}

// Sign fills in the identity key, checks every field, signs the descriptor
// with id and returns its encoding. The onion cert must be id's.
func (d *Descriptor) Sign(id *keys.Identity) ([]byte, error) {
	d.IdentityKey = id.Public()
	d.Published = fromUnix(unixSeconds(d.Published))
	d.Expires = fromUnix(unixSeconds(d.Expires))
	if err := d.check("sign"); err != nil {
		return nil, err
	}
	// A cert built field by field must still verify, or clients would
	// refuse the descriptor.
	if _, err := keys.ParseOnionCert(d.OnionCert.Marshal()); err != nil {
		return nil, errorf(ErrBadSignature, "directory: sign descriptor: %v", err)
	}
	body := d.appendBody(make([]byte, 0, d.encodedLen()))
	copy(d.Signature[:], id.Sign(d.label(), body))
	d.setRaw(append(body, d.Signature[:]...))
	return bytes.Clone(d.raw), nil
}

// Marshal re-encodes d from its fields, signature included, after checking
// them. For a parsed descriptor it returns exactly the parsed bytes.
func (d *Descriptor) Marshal() ([]byte, error) {
	if err := d.check("marshal"); err != nil {
		return nil, err
	}
	b := d.appendBody(make([]byte, 0, d.encodedLen()))
	return append(b, d.Signature[:]...), nil
}

// Bytes returns the signed encoding kept by Sign or parse, or nil.
func (d *Descriptor) Bytes() []byte { return bytes.Clone(d.raw) }

// Digest is SHA-256 of the signed encoding: what pointers and consensus
// entries name a descriptor by. It is zero for a descriptor that was
// neither signed nor parsed.
func (d *Descriptor) Digest() [32]byte { return d.digest }

// NodeID returns the relay's node ID.
func (d *Descriptor) NodeID() keys.NodeID {
	if d.raw != nil {
		return d.id
	}
	return keys.NodeIDFromIdentity(d.IdentityKey)
}

// ExitPolicy returns the rules a client may expect the relay to apply: a
// copy of Policy for an exit, nil (reject everything) otherwise.
func (d *Descriptor) ExitPolicy() exitpolicy.Policy {
	if d.Roles&RoleExit == 0 {
		return nil
	}
	return slices.Clone(d.Policy)
}

// Pointer returns the unsigned pointer that names d in gossip (SPEC.md §3).
func (d *Descriptor) Pointer() *Pointer {
	return &Pointer{
		IdentityKey: d.IdentityKey,
		Sequence:    d.Sequence,
		Digest:      d.Digest(),
		GossipName:  d.GossipName,
		GossipAddr:  d.GossipAddr,
	}
}

// CheckTime checks that d is usable at now: published no more than
// ClockSkew after now, and not yet expired. The onion cert covers the
// descriptor's whole life (check), so it is valid too.
func (d *Descriptor) CheckTime(now time.Time) error {
	t := now.Unix()
	if pub := d.Published.Unix(); pub > t+int64(ClockSkew/time.Second) {
		return errorf(ErrFromFuture, "directory: descriptor of %s published at %s, after now (%s) plus clock skew",
			d.NodeID().Short(), d.Published.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if t > d.Expires.Unix() {
		return errorf(ErrExpired, "directory: descriptor of %s expired at %s",
			d.NodeID().Short(), d.Expires.Format(time.RFC3339))
	}
	return nil
}

// version is 2 for a descriptor with an IPv6 OR address beside its IPv4
// one, else 1: each document has exactly one encoding.
func (d *Descriptor) version() byte {
	if d.ORAddrV6.IsValid() {
		return descriptorVersionV6
	}
	return descriptorVersion
}

// label is the signature label of d's version.
func (d *Descriptor) label() string {
	if d.version() == descriptorVersionV6 {
		return DescriptorLabelV2
	}
	return DescriptorLabel
}

// ORAddrs returns the relay's OR addresses, ORAddr first: a node dials
// the first its network reaches.
func (d *Descriptor) ORAddrs() []netip.AddrPort {
	if d.ORAddrV6.IsValid() {
		return []netip.AddrPort{d.ORAddr, d.ORAddrV6}
	}
	return []netip.AddrPort{d.ORAddr}
}

func (d *Descriptor) setRaw(b []byte) {
	d.raw = b
	d.id = keys.NodeIDFromIdentity(d.IdentityKey)
	d.digest = sha256.Sum256(b)
}

func (d *Descriptor) encodedLen() int {
	n := minDescriptorLen - 2 + len(d.Nickname) + len(d.GossipName) + len(d.Contact) + len(d.Family)*len(keys.NodeID{})
	if d.ORAddr.Addr().Is6() {
		n += 12
	}
	if d.ORAddrV6.IsValid() {
		n += addrPortMaxLen
	}
	if d.GossipAddr.Addr().Is6() {
		n += 12
	}
	for _, r := range d.Policy {
		n += 1 + len(r.String())
	}
	return n
}

// appendBody encodes everything but the signature, without checks.
func (d *Descriptor) appendBody(b []byte) []byte {
	b = append(b, d.version())
	b = append(b, d.IdentityKey...)
	b = append(b, d.OnionCert.Marshal()...)
	b = append(append(b, byte(len(d.Nickname))), d.Nickname...)
	b = appendAddrPort(b, d.ORAddr)
	if d.ORAddrV6.IsValid() {
		b = appendAddrPort(b, d.ORAddrV6)
	}
	b = append(append(b, byte(len(d.GossipName))), d.GossipName...)
	b = appendAddrPort(b, d.GossipAddr)
	b = append(b, byte(d.Roles))
	b = binary.BigEndian.AppendUint16(b, uint16(len(d.Policy)))
	for _, r := range d.Policy {
		s := r.String()
		b = append(append(b, byte(len(s))), s...)
	}
	b = binary.BigEndian.AppendUint64(b, d.StorageCapacity)
	b = binary.BigEndian.AppendUint64(b, d.Bandwidth)
	b = binary.BigEndian.AppendUint16(b, d.ProtocolVersion)
	b = append(b, byte(len(d.Family)))
	for _, f := range d.Family {
		b = append(b, f[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(d.Contact)))
	b = append(b, d.Contact...)
	b = binary.BigEndian.AppendUint64(b, d.Sequence)
	b = binary.BigEndian.AppendUint64(b, unixSeconds(d.Published))
	return binary.BigEndian.AppendUint64(b, unixSeconds(d.Expires))
}

// OperatorNet is the network one operator typically holds, as seeds count
// relays per network and clients keep path hops apart: an IPv4 /16 or an
// IPv6 /32.
func OperatorNet(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 16
	if a.Is6() {
		bits = 32
	}
	p, _ := a.Prefix(bits)
	return p
}
