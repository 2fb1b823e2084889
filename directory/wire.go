package directory

import (
	"encoding/binary"
	"net/netip"
	"time"

	"veil/onion"
)

// Encoding pieces shared by every document (SPEC.md §1).

const (
	// addrPortMaxLen is the largest encoded address: type (1), IPv6 (16),
	// port (2). An IPv4 address takes 7 bytes.
	addrPortMaxLen = 1 + 16 + 2
	addrPortMinLen = 1 + 4 + 2
)

// appendAddrPort encodes a checked address as type (1) | addr (4 or 16) |
// port (2), with the address types of onion/SPEC.md §7.1.
func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	if ap.Addr().Is4() {
		b = append(b, byte(onion.AddrIPv4))
	} else {
		b = append(b, byte(onion.AddrIPv6))
	}
	b = append(b, ap.Addr().AsSlice()...)
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

// checkAddrPort refuses what no node can be reached at, and the spellings
// that would give one address two encodings (zones, IPv4-mapped IPv6).
func checkAddrPort(ap netip.AddrPort) string {
	a := ap.Addr()
	switch {
	case !a.IsValid():
		return "no address"
	case a.Zone() != "":
		return "address " + a.String() + " has a zone"
	case a.Is4In6():
		return "IPv4-mapped address " + a.String() + ", give it as IPv4"
	case a.IsUnspecified():
		return "unspecified address " + a.String()
	case ap.Port() == 0:
		return "port 0"
	}
	return ""
}

// unixSeconds turns a time into what the wire carries; two's complement.
func unixSeconds(t time.Time) uint64 { return uint64(t.Unix()) }

// fromUnix is the inverse of unixSeconds, in UTC so printed times agree.
func fromUnix(s uint64) time.Time { return time.Unix(int64(s), 0).UTC() }

// cursor reads a document front to back. Every read checks the length
// before touching bytes; after the first failure reads return zero values
// and the first error is kept.
type cursor struct {
	b   []byte
	off int
	doc string // "descriptor", "pointer", "consensus": for messages
	err error
}

func (c *cursor) fail(format string, args ...any) {
	if c.err == nil {
		c.err = malformedf("directory: parse "+c.doc+": "+format, args...)
	}
}

func (c *cursor) take(n int, field string) []byte {
	if c.err != nil {
		return nil
	}
	if n < 0 || len(c.b)-c.off < n {
		c.fail("truncated in %s at byte %d: %d bytes left, want %d", field, c.off, len(c.b)-c.off, n)
		return nil
	}
	s := c.b[c.off : c.off+n : c.off+n]
	c.off += n
	return s
}

func (c *cursor) u8(field string) uint8 {
	if s := c.take(1, field); s != nil {
		return s[0]
	}
	return 0
}

func (c *cursor) u16(field string) uint16 {
	if s := c.take(2, field); s != nil {
		return binary.BigEndian.Uint16(s)
	}
	return 0
}

func (c *cursor) u32(field string) uint32 {
	if s := c.take(4, field); s != nil {
		return binary.BigEndian.Uint32(s)
	}
	return 0
}

func (c *cursor) u64(field string) uint64 {
	if s := c.take(8, field); s != nil {
		return binary.BigEndian.Uint64(s)
	}
	return 0
}

func (c *cursor) addrPort(field string) netip.AddrPort {
	var a netip.Addr
	switch t := c.u8(field + " type"); onion.AddrType(t) {
	case onion.AddrIPv4:
		if s := c.take(4, field); s != nil {
			a = netip.AddrFrom4([4]byte(s))
		}
	case onion.AddrIPv6:
		if s := c.take(16, field); s != nil {
			a = netip.AddrFrom16([16]byte(s))
		}
	default:
		c.fail("%s: unknown address type %d", field, t)
	}
	port := c.u16(field + " port")
	if c.err != nil {
		return netip.AddrPort{}
	}
	ap := netip.AddrPortFrom(a, port)
	if msg := checkAddrPort(ap); msg != "" {
		c.fail("%s: %s", field, msg)
	}
	return ap
}

// end fails unless every byte was read.
func (c *cursor) end() error {
	if c.err == nil && c.off != len(c.b) {
		c.fail("%d bytes after the end", len(c.b)-c.off)
	}
	return c.err
}
