package exitpolicy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// maxRules bounds a policy so a config file cannot make every exit decision
// walk an unbounded list (G9). Real policies have tens of lines.
const maxRules = 1024

// SyntaxError says why a rule does not parse.
type SyntaxError struct {
	Line int    // 1-based index into the lines given to Parse; 0 from ParseRule
	Text string // the rule as written
	Msg  string // what is wrong
	Hint string // how to fix it; may be empty
}

func (e *SyntaxError) Error() string {
	var b strings.Builder
	b.WriteString("exitpolicy: ")
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d ", e.Line)
	}
	fmt.Fprintf(&b, "%q: %s", e.Text, e.Msg)
	if e.Hint != "" {
		fmt.Fprintf(&b, " (hint: %s)", e.Hint)
	}
	return b.String()
}

// Parse parses a policy, one rule per line. The error is a *SyntaxError that
// names the 1-based index of the first bad line.
func Parse(lines []string) (Policy, error) {
	if len(lines) > maxRules {
		return nil, &SyntaxError{Line: maxRules + 1, Text: lines[maxRules],
			Msg:  fmt.Sprintf("too many rules: %d, at most %d", len(lines), maxRules),
			Hint: "merge rules with prefixes and port ranges"}
	}
	p := make(Policy, 0, len(lines))
	for i, line := range lines {
		r, err := ParseRule(line)
		if err != nil {
			se := err.(*SyntaxError)
			se.Line = i + 1
			return nil, se
		}
		p = append(p, r)
	}
	return p, nil
}

// ParseRule parses one "accept|reject ADDRSPEC:PORTSPEC" rule. The error is
// a *SyntaxError.
func ParseRule(line string) (Rule, error) {
	fail := func(msg, hint string) (Rule, error) {
		return Rule{}, &SyntaxError{Text: line, Msg: msg, Hint: hint}
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return fail("empty rule", "write a rule such as accept *:443, or remove the line")
	}
	var r Rule
	switch fields[0] {
	case "accept":
		r.Action = Accept
	case "reject":
		r.Action = Reject
	default:
		return fail(fmt.Sprintf("unknown action %q", fields[0]), "use accept or reject")
	}
	if len(fields) != 2 {
		return fail("want an action and one ADDRSPEC:PORTSPEC", "write e.g. reject *:25")
	}
	target := fields[1]
	colon := strings.LastIndexByte(target, ':')
	if colon < 0 {
		return fail(fmt.Sprintf("missing port in %q", target), "add :* for every port or :PORT, e.g. "+target+":*")
	}
	addrSpec, portSpec := target[:colon], target[colon+1:]
	if err := parseAddrSpec(&r, addrSpec); err != "" {
		return fail(err, "use *, *4, *6, private, 1.2.3.4, 10.0.0.0/8, [2001:db8::1] or [2001:db8::]/32")
	}
	lo, hi, err := parsePortSpec(portSpec)
	if err != "" {
		return fail(err, "use *, a port such as 443 or a range such as 8000-8999")
	}
	r.PortLo, r.PortHi = lo, hi
	return r, nil
}

// parseAddrSpec fills r.Kind and r.Prefix, or returns what is wrong.
func parseAddrSpec(r *Rule, s string) string {
	switch s {
	case "*":
		r.Kind = AnyAddr
		return ""
	case "*4":
		r.Kind = AnyIPv4
		return ""
	case "*6":
		r.Kind = AnyIPv6
		return ""
	case "private":
		r.Kind = PrivateAddr
		return ""
	case "":
		return "missing address"
	}
	addrPart, bitsPart, hasBits := strings.Cut(s, "/")
	var addr netip.Addr
	if strings.HasPrefix(addrPart, "[") {
		if !strings.HasSuffix(addrPart, "]") {
			return fmt.Sprintf("unclosed bracket in %q", s)
		}
		a, err := netip.ParseAddr(addrPart[1 : len(addrPart)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return fmt.Sprintf("bad IPv6 address %q", addrPart)
		}
		if a.Is4In6() {
			return fmt.Sprintf("IPv4-mapped address %q: destinations are matched as IPv4, so write %s", addrPart, a.Unmap())
		}
		addr = a
	} else {
		a, err := netip.ParseAddr(addrPart)
		if err != nil || !a.Is4() {
			if err == nil && a.Is6() {
				return fmt.Sprintf("IPv6 address %q must be in brackets", addrPart)
			}
			return fmt.Sprintf("bad address %q", addrPart)
		}
		addr = a
	}
	bits := addr.BitLen()
	if hasBits {
		n, err := strconv.Atoi(bitsPart)
		// Atoi accepts "+8" and "08"; demand the canonical digits.
		if err != nil || n < 0 || n > addr.BitLen() || strconv.Itoa(n) != bitsPart {
			return fmt.Sprintf("bad prefix length %q for %s", bitsPart, addrPart)
		}
		bits = n
	}
	prefix := netip.PrefixFrom(addr, bits)
	if masked := prefix.Masked(); masked != prefix {
		return fmt.Sprintf("%s has host bits set: did you mean %s", s, specOf(masked))
	}
	r.Kind, r.Prefix = PrefixAddr, prefix
	return ""
}

// specOf spells a prefix the way ParseRule reads it.
func specOf(p netip.Prefix) string {
	if p.Addr().Is6() {
		return fmt.Sprintf("[%s]/%d", p.Addr(), p.Bits())
	}
	return p.String()
}

// parsePortSpec returns the inclusive range of "*", "N" or "N-M".
func parsePortSpec(s string) (lo, hi uint16, errMsg string) {
	if s == "*" {
		return 1, 65535, ""
	}
	loS, hiS, isRange := strings.Cut(s, "-")
	if !isRange {
		hiS = loS
	}
	l, ok1 := parsePort(loS)
	h, ok2 := parsePort(hiS)
	if !ok1 || !ok2 {
		return 0, 0, fmt.Sprintf("bad port %q: ports are 1 to 65535", s)
	}
	if l > h {
		return 0, 0, fmt.Sprintf("empty port range %q: %d is above %d", s, l, h)
	}
	return l, h, ""
}

func parsePort(s string) (uint16, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != s {
		return 0, false
	}
	return uint16(n), true
}
