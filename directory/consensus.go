package directory

// A Consensus is one seed's signed list of the relays it vouches for.
// Layout (SPEC.md §5), integers big-endian:
//
//	size   field
//	1      version = consensusVersion (2)
//	32     seed identity: Ed25519 public key
//	8      valid-after: unix seconds, two's complement
//	8      fresh-until
//	8      valid-until
//	4      relay count n (0..MaxRelays)
//	…      n entries, strictly ascending by node ID:
//	         2   flags (Flags; unknown bits are refused)
//	         4   weight: measured bandwidth in KiB/s, 0 = not measured
//	         2   descriptor length m (≤ MaxDescriptorLen)
//	         m   the relay's signed descriptor (§2)
//	64     signature: Ed25519 by the seed over
//	       ConsensusLabel || 0x00 || every byte above
//
// Versions are append-only; a new layout gets a new version and label.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"veil/onion/keys"
)

const (
	// ConsensusLabel is the signature label of a consensus document.
	ConsensusLabel = "veil consensus v2"

	consensusVersion = 2
	consensusHeader  = 1 + ed25519.PublicKeySize + 8 + 8 + 8 + 4 // 61
	entryHeader      = 2 + 4 + 2
	minConsensusLen  = consensusHeader + ed25519.SignatureSize // 125

	// MaxRelays bounds the entries of one document: Tor's whole network
	// is about 8000 relays. Each descriptor costs two signature checks,
	// about 120 µs here (BenchmarkParseDescriptor), so a full document
	// costs a client about a second per fetch (G9).
	MaxRelays = 10000
	// MaxConsensusLen bounds a document's size. At about 400 bytes a
	// descriptor, MaxRelays ordinary relays take 4 MiB; 32 MiB leaves room
	// for big exit policies yet bounds what a client downloads and holds.
	// Sign refuses a document beyond it, so a seed must not admit relays
	// with oversized descriptors without limit.
	MaxConsensusLen = 32 << 20

	// MaxConsensusLifetime bounds valid-until − valid-after. A replayed
	// document is refused within 6 hours, and a relay's previous onion
	// key, kept for the 24-hour grace of keys/SPEC.md §4, outlives every
	// consensus that can list it.
	MaxConsensusLifetime = 6 * time.Hour
	// DefaultConsensusLifetime is the valid-until a seed should give
	// (valid-after + 3 h, as Tor): clients ride out three hours of seed
	// outage on the documents they hold. Fresh-until is valid-after plus
	// the seed's interval.
	DefaultConsensusLifetime = 3 * time.Hour
)

// Entry is one relay in a consensus or a View.
type Entry struct {
	Flags Flags
	// Weight is the relay's bandwidth as the seed measured it, in KiB/s
	// (SPEC.md §5.6): 0 means not measured. In a View it is the median of
	// the counted documents' weights. A relay's own claim (the
	// descriptor's Bandwidth) only caps it.
	Weight     uint32
	Descriptor *Descriptor // signed or parsed
}

// Consensus is one seed's view of the network for one interval. Sign and
// ParseConsensus keep the encoding; treat a signed or parsed document as
// read-only.
type Consensus struct {
	SeedKey    ed25519.PublicKey // filled in by Sign
	ValidAfter time.Time         // usable from here (less ClockSkew)
	FreshUntil time.Time         // clients fetch a newer one after this
	ValidUntil time.Time         // refused after this
	Relays     []Entry           // ascending by node ID; Sign sorts them
	Signature  [ed25519.SignatureSize]byte

	raw    []byte
	digest [sha256.Size]byte
}

// Sign fills in the seed key, sorts the relays by node ID, checks the
// document and signs it with seed. Every descriptor must be signed.
func (c *Consensus) Sign(seed *keys.Identity) ([]byte, error) {
	c.SeedKey = seed.Public()
	c.ValidAfter = fromUnix(unixSeconds(c.ValidAfter))
	c.FreshUntil = fromUnix(unixSeconds(c.FreshUntil))
	c.ValidUntil = fromUnix(unixSeconds(c.ValidUntil))
	slices.SortFunc(c.Relays, func(a, b Entry) int {
		if a.Descriptor == nil || b.Descriptor == nil {
			return 0 // check refuses it
		}
		ia, ib := a.Descriptor.NodeID(), b.Descriptor.NodeID()
		return bytes.Compare(ia[:], ib[:])
	})
	n, err := c.check("sign")
	if err != nil {
		return nil, err
	}
	body := c.appendBody(make([]byte, 0, n))
	copy(c.Signature[:], seed.Sign(ConsensusLabel, body))
	c.raw = append(body, c.Signature[:]...)
	c.digest = sha256.Sum256(c.raw)
	return bytes.Clone(c.raw), nil
}

// Marshal re-encodes c from its fields, signature included; descriptors
// are taken as they were signed or parsed. For a parsed document it returns
// exactly the parsed bytes.
func (c *Consensus) Marshal() ([]byte, error) {
	n, err := c.check("marshal")
	if err != nil {
		return nil, err
	}
	return append(c.appendBody(make([]byte, 0, n)), c.Signature[:]...), nil
}

// Bytes returns the signed encoding, or nil before Sign.
func (c *Consensus) Bytes() []byte { return bytes.Clone(c.raw) }

// Digest is SHA-256 of the signed encoding: what a seed serves it by.
func (c *Consensus) Digest() [32]byte { return c.digest }

// SeedID returns the node ID of the seed that signed c.
func (c *Consensus) SeedID() keys.NodeID { return keys.NodeIDFromIdentity(c.SeedKey) }

// CheckTime checks that c is usable at now: valid-after no more than
// ClockSkew after now, valid-until not passed.
func (c *Consensus) CheckTime(now time.Time) error {
	t := now.Unix()
	if c.ValidAfter.Unix() > t+int64(ClockSkew/time.Second) {
		return errorf(ErrFromFuture, "directory: consensus from seed %s not valid before %s",
			c.SeedID(), c.ValidAfter.Format(time.RFC3339))
	}
	if t > c.ValidUntil.Unix() {
		return errorf(ErrExpired, "directory: consensus from seed %s expired at %s",
			c.SeedID(), c.ValidUntil.Format(time.RFC3339))
	}
	return nil
}

// ParseConsensus parses a document and checks its structure, the seed's
// signature and every descriptor's structure and signatures. It does not
// check times (CheckTime) nor whether the seed is trusted (Combine). The
// seed's signature is checked before any descriptor, so a forged document
// costs one verification.
func ParseConsensus(b []byte) (*Consensus, error) {
	if len(b) > MaxConsensusLen {
		return nil, errorf(ErrTooLarge, "directory: parse consensus: %d bytes, at most %d", len(b), MaxConsensusLen)
	}
	if len(b) < minConsensusLen {
		return nil, malformedf("directory: parse consensus: %d bytes, at least %d", len(b), minConsensusLen)
	}
	raw := bytes.Clone(b)
	cur := &cursor{b: raw, doc: "consensus"}
	c := &Consensus{}
	if v := cur.u8("version"); v != consensusVersion {
		cur.fail("unknown version %d", v)
	}
	c.SeedKey = ed25519.PublicKey(cur.take(ed25519.PublicKeySize, "seed identity"))
	c.ValidAfter = fromUnix(cur.u64("valid-after"))
	c.FreshUntil = fromUnix(cur.u64("fresh-until"))
	c.ValidUntil = fromUnix(cur.u64("valid-until"))
	n := int(cur.u32("relay count"))
	if cur.err != nil {
		return nil, cur.err
	}
	if n > MaxRelays {
		return nil, malformedf("directory: parse consensus: %d relays, at most %d", n, MaxRelays)
	}
	if err := c.checkTimes("parse"); err != nil {
		return nil, err
	}
	signed := raw[:len(raw)-ed25519.SignatureSize]
	if !keys.Verify(c.SeedKey, ConsensusLabel, signed, raw[len(signed):]) {
		return nil, errorf(ErrBadSignature, "directory: parse consensus from seed %s: bad signature", c.SeedID())
	}
	c.Relays = make([]Entry, 0, min(n, (len(signed)-consensusHeader)/(entryHeader+minDescriptorLen)))
	for i := 0; i < n; i++ {
		flags := Flags(cur.u16("entry flags"))
		weight := cur.u32("entry weight")
		desc := cur.take(int(cur.u16("descriptor length")), "descriptor")
		if cur.err != nil {
			return nil, fmt.Errorf("%w (entry %d)", cur.err, i+1)
		}
		d, err := parseDescriptor(desc)
		if err != nil {
			return nil, fmt.Errorf("directory: parse consensus: entry %d: %w", i+1, err)
		}
		c.Relays = append(c.Relays, Entry{Flags: flags, Weight: weight, Descriptor: d})
	}
	copy(c.Signature[:], cur.take(ed25519.SignatureSize, "signature"))
	if err := cur.end(); err != nil {
		return nil, err
	}
	if _, err := c.check("parse"); err != nil {
		return nil, err
	}
	c.raw = raw
	c.digest = sha256.Sum256(raw)
	return c, nil
}

func (c *Consensus) checkTimes(op string) error {
	va, fu, vu := c.ValidAfter.Unix(), c.FreshUntil.Unix(), c.ValidUntil.Unix()
	if !(va < fu && fu <= vu) {
		return malformedf("directory: %s consensus: times out of order: valid-after %d, fresh-until %d, valid-until %d", op, va, fu, vu)
	}
	if life := uint64(vu) - uint64(va); life > uint64(MaxConsensusLifetime/time.Second) {
		return malformedf("directory: %s consensus: lifetime %d s exceeds %s", op, life, MaxConsensusLifetime)
	}
	return nil
}

// check validates c against SPEC.md §5 and returns its encoded length.
func (c *Consensus) check(op string) (int, error) {
	fail := func(format string, args ...any) (int, error) {
		return 0, malformedf("directory: "+op+" consensus: "+format, args...)
	}
	if len(c.SeedKey) != ed25519.PublicKeySize {
		return fail("seed key is %d bytes, want %d", len(c.SeedKey), ed25519.PublicKeySize)
	}
	if err := c.checkTimes(op); err != nil {
		return 0, err
	}
	if len(c.Relays) > MaxRelays {
		return fail("%d relays, at most %d", len(c.Relays), MaxRelays)
	}
	n := minConsensusLen
	var prev keys.NodeID
	for i, e := range c.Relays {
		if err := e.Check(); err != nil {
			return fail("entry %d: %v", i+1, err)
		}
		id := e.Descriptor.NodeID()
		if i > 0 && bytes.Compare(prev[:], id[:]) >= 0 {
			return fail("entry %d (%s): not strictly after the previous node ID", i+1, id.Short())
		}
		prev = id
		n += entryHeader + len(e.Descriptor.raw)
	}
	if n > MaxConsensusLen {
		return 0, errorf(ErrTooLarge, "directory: %s consensus: %d bytes, at most %d", op, n, MaxConsensusLen)
	}
	return n, nil
}

// Check reports whether e could be an entry of a consensus on its own
// (SPEC.md §5.2): a signed descriptor of a relay that is not a seed, known
// flags, and Exit or Storage only for a relay that offers it. A seed drops
// an entry that fails rather than fail to sign the rest.
func (e *Entry) Check() error {
	d := e.Descriptor
	if d == nil || d.raw == nil {
		return malformedf("descriptor is not signed")
	}
	id := d.NodeID()
	switch {
	case e.Flags&^knownFlags != 0:
		return malformedf("%s: unknown flags %#04x", id.Short(), uint16(e.Flags&^knownFlags))
	case d.Roles&RoleSeed != 0:
		return malformedf("%s: lists a seed, which carries no circuits", id.Short())
	case e.Flags&FlagExit != 0 && d.Roles&RoleExit == 0:
		return malformedf("%s: Exit flag for a relay that does not offer to exit", id.Short())
	case e.Flags&FlagStorage != 0 && d.Roles&RoleStorage == 0:
		return malformedf("%s: Storage flag for a relay that does not offer storage", id.Short())
	}
	return nil
}

func (c *Consensus) appendBody(b []byte) []byte {
	b = append(b, consensusVersion)
	b = append(b, c.SeedKey...)
	b = binary.BigEndian.AppendUint64(b, unixSeconds(c.ValidAfter))
	b = binary.BigEndian.AppendUint64(b, unixSeconds(c.FreshUntil))
	b = binary.BigEndian.AppendUint64(b, unixSeconds(c.ValidUntil))
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Relays)))
	for _, e := range c.Relays {
		b = binary.BigEndian.AppendUint16(b, uint16(e.Flags))
		b = binary.BigEndian.AppendUint32(b, e.Weight)
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.Descriptor.raw)))
		b = append(b, e.Descriptor.raw...)
	}
	return b
}
