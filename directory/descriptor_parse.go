package directory

// Parsing a descriptor (SPEC.md §2.4).

import (
	"bytes"
	"crypto/ed25519"
	"time"

	"veil/conf/exitpolicy"
	"veil/onion/keys"
)

// ParseDescriptor parses a signed descriptor, checks its structure, both
// signatures and that it is valid at now (CheckTime).
func ParseDescriptor(b []byte, now time.Time) (*Descriptor, error) {
	d, err := ParseDescriptorAnyTime(b)
	if err != nil {
		return nil, err
	}
	if err := d.CheckTime(now); err != nil {
		return nil, err
	}
	return d, nil
}

// ParseDescriptorAnyTime is ParseDescriptor without the check against the
// clock: for descriptors inside a consensus, which a client checks when it
// uses them, and for tests.
func ParseDescriptorAnyTime(b []byte) (*Descriptor, error) {
	if len(b) > MaxDescriptorLen {
		return nil, errorf(ErrTooLarge, "directory: parse descriptor: %d bytes, at most %d", len(b), MaxDescriptorLen)
	}
	return parseDescriptor(bytes.Clone(b))
}

// parseDescriptor parses b, which it keeps: the caller must not change it.
// Cheap checks come first and the descriptor's signature last, so that
// fuzzing reaches every check.
func parseDescriptor(b []byte) (*Descriptor, error) {
	if len(b) > MaxDescriptorLen {
		return nil, errorf(ErrTooLarge, "directory: parse descriptor: %d bytes, at most %d", len(b), MaxDescriptorLen)
	}
	if len(b) < minDescriptorLen {
		return nil, malformedf("directory: parse descriptor: %d bytes, at least %d", len(b), minDescriptorLen)
	}
	c := &cursor{b: b, doc: "descriptor"}
	d := &Descriptor{}
	v := c.u8("version")
	if v != descriptorVersion && v != descriptorVersionV6 {
		c.fail("unknown version %d", v)
	}
	d.IdentityKey = ed25519.PublicKey(c.take(ed25519.PublicKeySize, "identity"))
	certBytes := c.take(keys.OnionCertLen, "onion cert")
	d.Nickname = string(c.take(int(c.u8("nickname length")), "nickname"))
	d.ORAddr = c.addrPort("OR address")
	if v == descriptorVersionV6 {
		d.ORAddrV6 = c.addrPort("IPv6 OR address")
	}
	d.GossipName = string(c.take(int(c.u8("gossip name length")), "gossip name"))
	d.GossipAddr = c.addrPort("gossip address")
	d.Roles = Roles(c.u8("roles"))
	if n := int(c.u16("exit rule count")); n > MaxExitRules {
		c.fail("%d exit rules, at most %d", n, MaxExitRules)
	} else if n > 0 {
		d.Policy = make(exitpolicy.Policy, 0, n)
		for i := 0; i < n && c.err == nil; i++ {
			line := string(c.take(int(c.u8("exit rule length")), "exit rule"))
			r, err := exitpolicy.ParseRule(line)
			switch {
			case c.err != nil:
			case err != nil:
				c.fail("exit rule %d: %v", i+1, err)
			case r.String() != line:
				c.fail("exit rule %d %q is not in canonical form %q", i+1, line, r.String())
			}
			d.Policy = append(d.Policy, r)
		}
	}
	d.StorageCapacity = c.u64("storage capacity")
	d.Bandwidth = c.u64("bandwidth")
	d.ProtocolVersion = c.u16("protocol version")
	if n := int(c.u8("family count")); n > MaxFamily {
		c.fail("%d family members, at most %d", n, MaxFamily)
	} else if n > 0 {
		d.Family = make([]keys.NodeID, n)
		for i := range d.Family {
			if s := c.take(len(keys.NodeID{}), "family"); s != nil {
				d.Family[i] = keys.NodeID(s)
			}
		}
	}
	d.Contact = string(c.take(int(c.u16("contact length")), "contact"))
	d.Sequence = c.u64("sequence")
	d.Published = fromUnix(c.u64("published"))
	d.Expires = fromUnix(c.u64("expires"))
	sig := c.take(ed25519.SignatureSize, "signature")
	if err := c.end(); err != nil {
		return nil, err
	}
	copy(d.Signature[:], sig)

	cert, err := keys.ParseOnionCert(certBytes)
	if err != nil {
		return nil, errorf(ErrBadSignature, "directory: parse descriptor: %v", err)
	}
	d.OnionCert = cert
	if err := d.check("parse"); err != nil {
		return nil, err
	}
	signed := b[:len(b)-ed25519.SignatureSize]
	if !keys.Verify(d.IdentityKey, d.label(), signed, sig) {
		return nil, errorf(ErrBadSignature, "directory: parse descriptor of %s: bad signature",
			keys.NodeIDFromIdentity(d.IdentityKey).Short())
	}
	d.setRaw(b)
	return d, nil
}
