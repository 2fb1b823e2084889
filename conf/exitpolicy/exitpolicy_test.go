package exitpolicy

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestParseRuleCanonical(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"accept *:*", "accept *:*"},
		{"reject  *:25", "reject *:25"},
		{"\taccept *4:80-443 ", "accept *4:80-443"},
		{"accept *6:443", "accept *6:443"},
		{"reject private:*", "reject private:*"},
		{"accept 1.2.3.4:22", "accept 1.2.3.4:22"},
		{"accept 1.2.3.4/32:22", "accept 1.2.3.4:22"},
		{"reject 10.0.0.0/8:1-65535", "reject 10.0.0.0/8:*"},
		{"accept 0.0.0.0/0:80-80", "accept 0.0.0.0/0:80"},
		{"accept [2001:db8::1]:443", "accept [2001:db8::1]:443"},
		{"accept [2001:DB8::]/32:443", "accept [2001:db8::]/32:443"},
		{"accept [::1]/128:*", "accept [::1]:*"},
	}
	for _, tt := range tests {
		r, err := ParseRule(tt.in)
		if err != nil {
			t.Errorf("ParseRule(%q): %v", tt.in, err)
			continue
		}
		if got := r.String(); got != tt.want {
			t.Errorf("ParseRule(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseRuleErrors(t *testing.T) {
	tests := []struct {
		in, msg string // msg is a substring of SyntaxError.Msg
	}{
		{"", "empty rule"},
		{"acept *:80", `unknown action "acept"`},
		{"ACCEPT *:80", `unknown action "ACCEPT"`},
		{"accept", "want an action"},
		{"accept *:80 extra", "want an action"},
		{"accept *", "missing port"},
		{"accept :80", "missing address"},
		{"accept *:0", "bad port"},
		{"accept *:65536", "bad port"},
		{"accept *:080", "bad port"},
		{"accept *:+80", "bad port"},
		{"accept *:http", "bad port"},
		{"accept *:443-80", "empty port range"},
		{"accept *:80-", "bad port"},
		{"accept *5:80", "bad address"},
		{"accept Private:80", "bad address"},
		{"accept 1.2.3:80", "bad address"},
		{"accept 10.1.0.0/8:*", "host bits set: did you mean 10.0.0.0/8"},
		{"accept 10.0.0.0/33:*", "bad prefix length"},
		{"accept 10.0.0.0/08:*", "bad prefix length"},
		{"accept 10.0.0.0/:*", "bad prefix length"},
		{"accept 2001:db8::1:443", "must be in brackets"},
		{"accept [2001:db8::1:443", "unclosed bracket"},
		{"accept [1.2.3.4]:443", "bad IPv6"},
		{"accept [fe80::1%eth0]:443", "bad IPv6"},
		{"accept [::ffff:127.0.0.1]:*", "IPv4-mapped"},
		{"accept [2001:db8::1]/129:*", "bad prefix length"},
	}
	for _, tt := range tests {
		_, err := ParseRule(tt.in)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("ParseRule(%q) = %v, want *SyntaxError", tt.in, err)
			continue
		}
		if !strings.Contains(se.Msg, tt.msg) || se.Text != tt.in || se.Hint == "" {
			t.Errorf("ParseRule(%q) = %+v, want Msg containing %q and a hint", tt.in, se, tt.msg)
		}
	}
}

func TestParseNamesLine(t *testing.T) {
	_, err := Parse([]string{"reject private:*", "acept *:80"})
	want := `exitpolicy: line 2 "acept *:80": unknown action "acept" (hint: use accept or reject)`
	if err == nil || err.Error() != want {
		t.Fatalf("Parse error = %v, want %s", err, want)
	}
	if _, err := Parse(make([]string, maxRules+1)); err == nil || !strings.Contains(err.Error(), "too many rules") {
		t.Fatalf("Parse(too many) = %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	policies := map[string]Policy{
		"default":  Default(),
		"loopback": LoopbackOnly(),
		"reject":   RejectAll(),
		"empty":    {},
	}
	p, err := Parse([]string{"accept [2001:db8::]/48:80-89", "reject *6:*", "accept 192.0.2.0/24:443", "accept *4:1-1024"})
	if err != nil {
		t.Fatal(err)
	}
	policies["mixed"] = p
	for name, p := range policies {
		got, err := Parse(p.Lines())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("%s: Parse(Lines()) = %v, want %v", name, got, p)
		}
		if len(p) > 0 && p.String() != strings.Join(p.Lines(), "\n") {
			t.Errorf("%s: String and Lines disagree", name)
		}
	}
	if got := Default().Lines(); !reflect.DeepEqual(got, []string{"reject private:*", "reject *:25", "accept *:*"}) {
		t.Errorf("Default().Lines() = %q", got)
	}
	if got := LoopbackOnly().Lines(); !reflect.DeepEqual(got, []string{"accept 127.0.0.1:*", "reject *:*"}) {
		t.Errorf("LoopbackOnly().Lines() = %q", got)
	}
}

func TestAllows(t *testing.T) {
	custom, err := Parse([]string{"accept *6:443", "reject 192.0.2.0/24:*", "accept *4:80-81", "accept [2001:db8::]/32:22"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		policy Policy
		addr   string
		port   uint16
		want   bool
	}{
		{Default(), "93.184.216.34", 443, true},
		{Default(), "93.184.216.34", 25, false},
		{Default(), "2606:2800:220:1::1", 80, true},
		{Default(), "127.0.0.1", 80, false},
		{Default(), "127.8.9.10", 80, false},
		{Default(), "::ffff:127.0.0.1", 80, false}, // mapped loopback must not slip through
		{Default(), "::ffff:93.184.216.34", 80, true},
		{Default(), "10.1.2.3", 443, false},
		{Default(), "172.31.255.255", 443, false},
		{Default(), "172.32.0.1", 443, true},
		{Default(), "192.168.1.1", 443, false},
		{Default(), "169.254.169.254", 80, false}, // cloud metadata service
		{Default(), "100.64.0.1", 80, false},
		{Default(), "100.128.0.1", 80, true},
		{Default(), "0.0.0.0", 80, false},
		{Default(), "::", 80, false},
		{Default(), "::1", 80, false},
		{Default(), "fe80::1%eth0", 80, false},
		{Default(), "fd00::1", 80, false},
		{Default(), "93.184.216.34", 0, false},
		{Default(), "", 80, false},
		{LoopbackOnly(), "127.0.0.1", 8080, true},
		{LoopbackOnly(), "127.0.0.2", 8080, false},
		{LoopbackOnly(), "::1", 8080, false},
		{LoopbackOnly(), "93.184.216.34", 80, false},
		{RejectAll(), "93.184.216.34", 80, false},
		{nil, "93.184.216.34", 80, false},
		{custom, "2001:db8::5", 443, true},
		{custom, "2001:db8::5", 22, true},
		{custom, "2001:db9::5", 22, false},
		{custom, "192.0.2.7", 80, false},
		{custom, "198.51.100.7", 80, true},
		{custom, "198.51.100.7", 82, false},
		{custom, "::ffff:198.51.100.7", 443, false}, // judged as IPv4, which *6 does not cover
	}
	for _, tt := range tests {
		var addr netip.Addr
		if tt.addr != "" {
			addr = netip.MustParseAddr(tt.addr)
		}
		if got := tt.policy.Allows(addr, tt.port); got != tt.want {
			t.Errorf("%q.Allows(%s, %d) = %v, want %v", tt.policy.Lines(), tt.addr, tt.port, got, tt.want)
		}
	}
}

// TestRejectOwn: the exit's own addresses are refused first, under any
// policy that does not name them; one it names stays reachable.
func TestRejectOwn(t *testing.T) {
	own := []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::ffff:192.0.2.10")}
	p := Default().RejectOwn(own)
	for _, a := range own {
		if p.Allows(a, 443) {
			t.Errorf("the default policy with the exit's own addresses allows %s", a)
		}
	}
	if !p.Allows(netip.MustParseAddr("192.0.2.11"), 443) {
		t.Error("a neighbour of the exit's address is refused")
	}
	open, err := Parse([]string{"accept *:*"})
	if err != nil {
		t.Fatal(err)
	}
	if open.RejectOwn(own).Allows(netip.MustParseAddr("192.0.2.10"), 80) {
		t.Error("accept *:* reaches the exit's own address")
	}
	if !LoopbackOnly().RejectOwn(own).Allows(netip.MustParseAddr("127.0.0.1"), 80) {
		t.Error("a policy that names 127.0.0.1 lost it")
	}
	if n := len(Default().RejectOwn(own)) - len(Default()); n != 3 {
		t.Errorf("%d rules added, want 3 (the mapped address is the IPv4 one; 127.0.0.1 is private anyway but still listed)", n)
	}
}
