package directory

// A Diff turns a document a client holds (the base) into a newer one (the
// target), carrying in full only what the base lacks (SPEC.md §5.7; Tor's
// consensus diffs, proposal 140). It is not signed: what it makes must be
// the target byte for byte, which the client checks by digest and then by
// ParseConsensus, the seed's signature included. Layout, integers
// big-endian:
//
//	size   field
//	1      version = diffVersion (1)
//	32     base digest: SHA-256 of the document the diff applies to
//	32     target digest: SHA-256 of the document it makes
//	61     target header: the target's first 61 bytes (§5.1), relay count n last
//	…      n ops, one per target entry, in order:
//	         2   flags
//	         4   weight
//	         2   skip: base entries the cursor passes over first (0..MaxRelays)
//	         2   descriptor length m: 0 = the base entry's at the cursor,
//	             which the cursor then passes; else 1..MaxDescriptorLen
//	         m   the descriptor, byte for byte
//	64     target signature
//
// Versions are append-only; a new layout gets a new version.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"veil/onion/keys"
)

const (
	diffVersion = 1
	// diffFixedLen is a diff with no ops: version, two digests, the
	// target's header and its signature.
	diffFixedLen = 1 + sha256.Size + sha256.Size + consensusHeader + ed25519.SignatureSize // 190
	diffOpHeader = 2 + 4 + 2 + 2
	// MaxDiffLen bounds a diff: a target of MaxConsensusLen bytes with
	// every descriptor in full is 65 bytes (version and digests) and 2 a
	// relay (skip) longer than the document itself. A cache serves a diff
	// only when it is shorter than the document.
	MaxDiffLen = MaxConsensusLen + (diffFixedLen - minConsensusLen) + 2*MaxRelays
)

// DiffOp makes one entry of the target.
type DiffOp struct {
	Flags  Flags
	Weight uint32
	// Skip is how many base entries the cursor passes over before this
	// entry: relays the target no longer lists, or whose descriptor
	// changed.
	Skip uint16
	// Descriptor is the entry's signed descriptor, or nil for the one of
	// the base entry at the cursor (then the cursor passes it).
	Descriptor []byte
}

// Diff makes the target document from the base. MakeDiff and ParseDiff
// keep the fields consistent; Marshal checks them.
type Diff struct {
	Base, Target [sha256.Size]byte
	Header       [consensusHeader]byte // the target's first bytes, relay count last
	Ops          []DiffOp              // one per target entry
	Signature    [ed25519.SignatureSize]byte
}

// BaseEntry is what MakeDiff reads of one entry of a base document: its
// relay and which descriptor it lists.
type BaseEntry struct {
	ID     keys.NodeID
	Digest [sha256.Size]byte // of the descriptor
}

// DiffBase is what MakeDiff reads of a base document: its digest and its
// entries in order. A cache keeps DiffBases of past documents rather than
// the documents (a few pointers an entry when the entries are shared
// among bases, against about 370 bytes).
type DiffBase struct {
	Digest  [sha256.Size]byte
	Entries []*BaseEntry
}

// NewDiffBase returns c's DiffBase. intern, when not nil, may return an
// equal BaseEntry already held, so that bases share them.
func NewDiffBase(c *Consensus, intern func(BaseEntry) *BaseEntry) *DiffBase {
	b := &DiffBase{Digest: c.digest, Entries: make([]*BaseEntry, len(c.Relays))}
	for i, e := range c.Relays {
		be := BaseEntry{ID: e.Descriptor.NodeID(), Digest: e.Descriptor.digest}
		if intern != nil {
			b.Entries[i] = intern(be)
		} else {
			b.Entries[i] = &be
		}
	}
	return b
}

// MakeDiff returns the diff that makes target, which must have been
// signed or parsed, from base. Entries of both are ascending by node ID,
// so one pass over both finds every descriptor the base already lists.
func MakeDiff(base *DiffBase, target *Consensus) *Diff {
	d := &Diff{Base: base.Digest, Target: target.digest, Signature: target.Signature,
		Ops: make([]DiffOp, len(target.Relays))}
	copy(d.Header[:], target.raw)
	cur := 0
	for i, e := range target.Relays {
		id := e.Descriptor.NodeID()
		skip := 0
		for cur < len(base.Entries) && bytes.Compare(base.Entries[cur].ID[:], id[:]) < 0 {
			cur++
			skip++
		}
		op := DiffOp{Flags: e.Flags, Weight: e.Weight, Skip: uint16(skip)}
		if cur < len(base.Entries) && base.Entries[cur].ID == id && base.Entries[cur].Digest == e.Descriptor.digest {
			cur++
		} else {
			op.Descriptor = e.Descriptor.raw
		}
		d.Ops[i] = op
	}
	return d
}

// Len returns the length of d's encoding.
func (d *Diff) Len() int {
	n := diffFixedLen + diffOpHeader*len(d.Ops)
	for _, op := range d.Ops {
		n += len(op.Descriptor)
	}
	return n
}

// Marshal encodes d after checking every rule of SPEC.md §5.7 that does
// not need the base.
func (d *Diff) Marshal() ([]byte, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, d.Len())
	b = append(b, diffVersion)
	b = append(b, d.Base[:]...)
	b = append(b, d.Target[:]...)
	b = append(b, d.Header[:]...)
	for _, op := range d.Ops {
		b = binary.BigEndian.AppendUint16(b, uint16(op.Flags))
		b = binary.BigEndian.AppendUint32(b, op.Weight)
		b = binary.BigEndian.AppendUint16(b, op.Skip)
		b = binary.BigEndian.AppendUint16(b, uint16(len(op.Descriptor)))
		b = append(b, op.Descriptor...)
	}
	return append(b, d.Signature[:]...), nil
}

// check applies the rules a diff must follow on its own.
func (d *Diff) check() error {
	fail := func(format string, args ...any) error {
		return malformedf("directory: consensus diff: "+format, args...)
	}
	if d.Base == d.Target {
		return fail("base and target are the same document")
	}
	if d.Header[0] != consensusVersion {
		return fail("target version %d, want %d", d.Header[0], consensusVersion)
	}
	n := binary.BigEndian.Uint32(d.Header[consensusHeader-4:])
	if n > MaxRelays {
		return fail("%d relays, at most %d", n, MaxRelays)
	}
	if int(n) != len(d.Ops) {
		return fail("header lists %d relays, %d ops", n, len(d.Ops))
	}
	// The cursor never passes more entries than a base can have.
	passed := 0
	for i, op := range d.Ops {
		if len(op.Descriptor) > MaxDescriptorLen {
			return errorf(ErrTooLarge, "directory: consensus diff: op %d: descriptor of %d bytes, at most %d", i+1, len(op.Descriptor), MaxDescriptorLen)
		}
		if op.Descriptor != nil && len(op.Descriptor) == 0 {
			return fail("op %d: an empty descriptor", i+1)
		}
		passed += int(op.Skip)
		if op.Descriptor == nil {
			passed++
		}
		if passed > MaxRelays {
			return fail("op %d: the cursor passes %d base entries, at most %d", i+1, passed, MaxRelays)
		}
	}
	if d.Len() > MaxDiffLen {
		return errorf(ErrTooLarge, "directory: consensus diff: %d bytes, at most %d", d.Len(), MaxDiffLen)
	}
	return nil
}

// ParseDiff parses a diff and checks every rule that does not need the
// base; Apply checks the rest.
func ParseDiff(b []byte) (*Diff, error) {
	if len(b) > MaxDiffLen {
		return nil, errorf(ErrTooLarge, "directory: parse consensus diff: %d bytes, at most %d", len(b), MaxDiffLen)
	}
	if len(b) < diffFixedLen {
		return nil, malformedf("directory: parse consensus diff: %d bytes, at least %d", len(b), diffFixedLen)
	}
	cur := &cursor{b: bytes.Clone(b), doc: "consensus diff"}
	d := &Diff{}
	if v := cur.u8("version"); v != diffVersion {
		cur.fail("unknown version %d", v)
	}
	copy(d.Base[:], cur.take(sha256.Size, "base digest"))
	copy(d.Target[:], cur.take(sha256.Size, "target digest"))
	copy(d.Header[:], cur.take(consensusHeader, "target header"))
	if cur.err != nil {
		return nil, cur.err
	}
	n := binary.BigEndian.Uint32(d.Header[consensusHeader-4:])
	if n > MaxRelays {
		return nil, malformedf("directory: parse consensus diff: %d relays, at most %d", n, MaxRelays)
	}
	d.Ops = make([]DiffOp, 0, min(int(n), (len(b)-diffFixedLen)/diffOpHeader))
	for i := 0; i < int(n); i++ {
		op := DiffOp{Flags: Flags(cur.u16("op flags")), Weight: cur.u32("op weight"), Skip: cur.u16("op skip")}
		if m := int(cur.u16("descriptor length")); m > 0 {
			op.Descriptor = cur.take(m, "descriptor")
		}
		if cur.err != nil {
			return nil, fmt.Errorf("%w (op %d)", cur.err, i+1)
		}
		d.Ops = append(d.Ops, op)
	}
	copy(d.Signature[:], cur.take(ed25519.SignatureSize, "signature"))
	if err := cur.end(); err != nil {
		return nil, err
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	return d, nil
}

// Apply makes the target document from base, which must be the document
// d names (ErrMismatch otherwise), checks that its digest is the one d
// names (ErrMismatch), and parses it (ParseConsensus: the seed's signature
// and every descriptor). Whoever asked for it then checks, as for a
// document fetched whole, who signed it and when it is valid.
func (d *Diff) Apply(base *Consensus) (*Consensus, error) {
	if base.digest != d.Base {
		return nil, errorf(ErrMismatch, "directory: consensus diff: for base %x, not the document held (%x)", d.Base[:8], base.digest[:8])
	}
	out := make([]byte, 0, min(d.Len()+entryHeader*len(base.Relays), MaxConsensusLen))
	out = append(out, d.Header[:]...)
	cur := 0
	for i, op := range d.Ops {
		if cur += int(op.Skip); cur > len(base.Relays) {
			return nil, malformedf("directory: consensus diff: op %d: the cursor passes the base's %d entries", i+1, len(base.Relays))
		}
		desc := op.Descriptor
		if desc == nil {
			if cur >= len(base.Relays) {
				return nil, malformedf("directory: consensus diff: op %d: the cursor passes the base's %d entries", i+1, len(base.Relays))
			}
			desc = base.Relays[cur].Descriptor.raw
			cur++
		}
		if len(out)+entryHeader+len(desc)+ed25519.SignatureSize > MaxConsensusLen {
			return nil, errorf(ErrTooLarge, "directory: consensus diff: makes over %d bytes", MaxConsensusLen)
		}
		out = binary.BigEndian.AppendUint16(out, uint16(op.Flags))
		out = binary.BigEndian.AppendUint32(out, op.Weight)
		out = binary.BigEndian.AppendUint16(out, uint16(len(desc)))
		out = append(out, desc...)
	}
	out = append(out, d.Signature[:]...)
	if got := sha256.Sum256(out); got != d.Target {
		return nil, errorf(ErrMismatch, "directory: consensus diff: makes a document with digest %x, not the target %x", got[:8], d.Target[:8])
	}
	c, err := ParseConsensus(out)
	if err != nil {
		return nil, fmt.Errorf("directory: consensus diff: the document made: %w", err)
	}
	return c, nil
}
