package directory

// The rules every descriptor field follows (SPEC.md §2.1, §2.3), checked by
// Sign, Marshal and parse alike.

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"veil/conf/exitpolicy"
	"veil/onion/keys"
)

// check validates every field against SPEC.md §2; op names the caller.
func (d *Descriptor) check(op string) error {
	fail := func(format string, args ...any) error {
		return malformedf("directory: "+op+" descriptor: "+format, args...)
	}
	if len(d.IdentityKey) != ed25519.PublicKeySize {
		return fail("identity key is %d bytes, want %d", len(d.IdentityKey), ed25519.PublicKeySize)
	}
	if d.OnionCert == nil {
		return fail("no onion cert")
	}
	if !bytes.Equal(d.OnionCert.IdentityKey, d.IdentityKey) {
		return errorf(ErrBadSignature, "directory: %s descriptor: onion cert is signed by another identity", op)
	}
	if msg := checkNickname(d.Nickname); msg != "" {
		return fail("nickname: %s", msg)
	}
	if msg := checkAddrPort(d.ORAddr); msg != "" {
		return fail("OR address: %s", msg)
	}
	if d.ORAddrV6.IsValid() {
		if msg := checkAddrPort(d.ORAddrV6); msg != "" {
			return fail("IPv6 OR address: %s", msg)
		}
		if !d.ORAddrV6.Addr().Is6() || !d.ORAddr.Addr().Is4() {
			return fail("IPv6 OR address %s beside %s: version 2 pairs an IPv4 OR address with an IPv6 one", d.ORAddrV6, d.ORAddr)
		}
	}
	if msg := checkGossipName(d.GossipName); msg != "" {
		return fail("gossip name: %s", msg)
	}
	if msg := checkAddrPort(d.GossipAddr); msg != "" {
		return fail("gossip address: %s", msg)
	}
	if d.Roles&^knownRoles != 0 {
		return fail("unknown roles %#02x", uint8(d.Roles&^knownRoles))
	}
	if d.Roles&RoleSeed != 0 && d.Roles != RoleSeed {
		return fail("roles %#02x: a seed has no other role", uint8(d.Roles))
	}
	if err := d.checkPolicy(fail); err != nil {
		return err
	}
	if (d.Roles&RoleStorage != 0) != (d.StorageCapacity != 0) {
		return fail("storage capacity %d does not fit roles %#02x: non-zero exactly for storage relays", d.StorageCapacity, uint8(d.Roles))
	}
	if d.ProtocolVersion == 0 {
		return fail("protocol version 0")
	}
	if len(d.Family) > MaxFamily {
		return fail("%d family members, at most %d", len(d.Family), MaxFamily)
	}
	self := keys.NodeIDFromIdentity(d.IdentityKey)
	for i, f := range d.Family {
		if i > 0 && bytes.Compare(d.Family[i-1][:], f[:]) >= 0 {
			return fail("family is not strictly ascending at member %d", i+1)
		}
		if f == self {
			return fail("family lists the relay itself")
		}
	}
	if msg := checkContact(d.Contact); msg != "" {
		return fail("contact: %s", msg)
	}
	return d.checkTimes(fail)
}

func (d *Descriptor) checkPolicy(fail func(string, ...any) error) error {
	if len(d.Policy) > MaxExitRules {
		return fail("%d exit rules, at most %d", len(d.Policy), MaxExitRules)
	}
	if (d.Roles&RoleExit != 0) != (len(d.Policy) != 0) {
		return fail("%d exit rules do not fit roles %#02x: an exit needs rules, other relays have none", len(d.Policy), uint8(d.Roles))
	}
	for i, r := range d.Policy {
		// Only a rule that parses back to itself has one encoding.
		line := r.String()
		if back, err := exitpolicy.ParseRule(line); err != nil || back != r || len(line) > maxRuleLen {
			return fail("exit rule %d %q is not a valid rule", i+1, line)
		}
	}
	return nil
}

// checkTimes demands created ≤ published < expires ≤ cert expiry and a
// bounded lifetime, so that the cert is valid whenever the descriptor is.
// Comparisons are on unix seconds: time.Time misorders extreme values.
func (d *Descriptor) checkTimes(fail func(string, ...any) error) error {
	pub, exp := d.Published.Unix(), d.Expires.Unix()
	if exp <= pub {
		return fail("expires at %d, not after published %d", exp, pub)
	}
	if life := uint64(exp) - uint64(pub); life > uint64(MaxDescriptorLifetime/time.Second) {
		return fail("lifetime %d s exceeds %s", life, MaxDescriptorLifetime)
	}
	if d.OnionCert.Created.Unix() > pub || d.OnionCert.Expires.Unix() < exp {
		return fail("onion cert valid %d..%d does not cover the descriptor's %d..%d",
			d.OnionCert.Created.Unix(), d.OnionCert.Expires.Unix(), pub, exp)
	}
	return nil
}

func checkNickname(s string) string {
	if len(s) < 1 || len(s) > MaxNicknameLen {
		return fmt.Sprintf("%d bytes, want 1..%d", len(s), MaxNicknameLen)
	}
	for i := 0; i < len(s); i++ {
		if ch := s[i]; !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9') {
			return fmt.Sprintf("byte %q at %d is not a letter or digit", ch, i)
		}
	}
	return ""
}

func checkGossipName(s string) string {
	if len(s) < 1 || len(s) > MaxGossipNameLen {
		return fmt.Sprintf("%d bytes, want 1..%d", len(s), MaxGossipNameLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return fmt.Sprintf("byte %#02x at %d is not printable ASCII", s[i], i)
		}
	}
	return ""
}

// checkContact allows any printable text on one line: control, format
// (bidi overrides) and line-separator characters could disguise what an
// operator's contact says when `veil status` prints it.
func checkContact(s string) string {
	if len(s) > MaxContactLen {
		return fmt.Sprintf("%d bytes, at most %d", len(s), MaxContactLen)
	}
	if !utf8.ValidString(s) {
		return "not UTF-8"
	}
	for i, r := range s {
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
			return fmt.Sprintf("character %U at byte %d is not printable", r, i)
		}
	}
	return ""
}
