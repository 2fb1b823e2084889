package onion

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// roundTrip marshals m, checks the strict length of the encoding, parses it
// back and demands equality both ways.
func roundTrip[M any](t *testing.T, name string, m M, marshal func(*M) ([]byte, error), parse func([]byte) (M, error)) {
	t.Helper()
	b, err := marshal(&m)
	if err != nil {
		t.Fatalf("%s: marshal: %v", name, err)
	}
	checkStrictLength(t, name, b, func(b []byte) error { _, err := parse(b); return err })
	got, err := parse(b)
	if err != nil {
		t.Fatalf("%s: parse: %v", name, err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("%s: round trip gave %+v, want %+v", name, got, m)
	}
	if b2, err := marshal(&got); err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("%s: re-marshal differs (%v)", name, err)
	}
}

func TestBeginRoundTrip(t *testing.T) {
	for _, m := range []Begin{
		{Addr: netip.MustParseAddr("192.0.2.1"), Port: 443},
		{Addr: netip.MustParseAddr("2001:db8::1"), Port: 1},
		{Hostname: "example.com", Port: 80},
		{Hostname: "Ex_am-ple.COM.", Port: 65535},
		{Hostname: "a", Port: 8080},
		{Hostname: "1.2.3.x", Port: 8080},
		{Hostname: strings.Repeat("a", MaxHostnameLen), Port: 1},
	} {
		roundTrip(t, "BEGIN "+m.Hostname+m.Addr.String(), m, (*Begin).Marshal, ParseBegin)
	}
}

func TestBeginInvalid(t *testing.T) {
	tail := []byte{0, 80, 0, 0, 0, 0} // port 80, no flags
	host := func(h string) []byte {
		return append(append([]byte{byte(AddrHostname), byte(len(h))}, h...), tail...)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"address type 0", append([]byte{0, 1, 2, 3, 4}, tail...)},
		{"address type 4", append([]byte{4, 1, 2, 3, 4}, tail...)},
		{"hostname length missing", []byte{byte(AddrHostname)}},
		{"hostname empty", host("")},
		{"hostname space", host("exa mple.com")},
		{"hostname colon", host("::1")},
		{"hostname slash", host("a/b")},
		{"hostname NUL", host("a\x00b")},
		{"hostname UTF-8", host("exämple.com")},
		{"hostname empty label", host("a..b")},
		{"hostname leading dot", host(".a")},
		{"hostname only dot", host(".")},
		{"hostname IPv4 literal", host("1.2.3.4")},
		{"hostname IPv4 literal with dot", host("127.0.0.1.")},
		{"hostname IPv4 number", host("2130706433")},
		{"hostname IPv4 short", host("10.1")},
		{"hostname IPv4 hex", host("0x7f.1")},
		{"port 0", append([]byte{byte(AddrIPv4), 1, 2, 3, 4}, 0, 0, 0, 0, 0, 0)},
		{"flags set", append([]byte{byte(AddrIPv4), 1, 2, 3, 4}, 0, 80, 0, 0, 0, 1)},
		{"IPv4-mapped", append(append([]byte{byte(AddrIPv6)}, netip.MustParseAddr("::ffff:1.2.3.4").AsSlice()...), tail...)},
	}
	for _, tt := range tests {
		if _, err := ParseBegin(tt.b); err == nil {
			t.Errorf("%s: accepted", tt.name)
		} else if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v does not wrap ErrMalformed", tt.name, err)
		}
	}
	for _, m := range []Begin{
		{Hostname: "example.com"},
		{Port: 1},
		{Addr: netip.MustParseAddr("1.2.3.4"), Hostname: "x", Port: 1},
		{Addr: netip.MustParseAddr("fe80::1%eth0"), Port: 1},
		{Addr: netip.MustParseAddr("::ffff:1.2.3.4"), Port: 1},
		{Hostname: strings.Repeat("a", MaxHostnameLen+1), Port: 1},
	} {
		if _, err := m.Marshal(); err == nil {
			t.Errorf("marshal %+v accepted", m)
		}
	}
}

func TestConnectedRoundTrip(t *testing.T) {
	for _, m := range []Connected{
		{},
		{Addr: netip.MustParseAddr("198.51.100.7")},
		{Addr: netip.MustParseAddr("2001:db8::2")},
	} {
		roundTrip(t, "CONNECTED "+m.Addr.String(), m, (*Connected).Marshal, ParseConnected)
	}
	for _, b := range [][]byte{nil, {3, 1, 2, 3, 4}, {1, 1, 2, 3}, {0, 0},
		append([]byte{2}, netip.MustParseAddr("::ffff:1.2.3.4").AsSlice()...)} {
		if _, err := ParseConnected(b); err == nil {
			t.Errorf("CONNECTED %x accepted", b)
		}
	}
	if _, err := (&Connected{Addr: netip.MustParseAddr("fe80::1%eth0")}).Marshal(); err == nil {
		t.Error("CONNECTED with a zone accepted")
	}
}

func TestEnd(t *testing.T) {
	for r := EndReason(1); r < 255; r++ {
		roundTrip(t, "END "+r.String(), End{Reason: r}, (*End).Marshal, ParseEnd)
	}
	if _, err := ParseEnd([]byte{0}); err == nil {
		t.Error("END reason 0 accepted")
	}
	if _, err := (&End{}).Marshal(); err == nil {
		t.Error("END reason 0 marshalled")
	}
	socks := map[EndReason]byte{
		EndMisc: 0x01, EndResolveFailed: 0x04, EndConnectRefused: 0x05, EndExitPolicy: 0x02,
		EndTimeout: 0x06, EndNoRoute: 0x04, EndNetUnreach: 0x03, EndHostUnreach: 0x04,
		EndDone: 0x01, EndReason(99): 0x01,
	}
	for r, want := range socks {
		if got := r.SOCKSReply(); got != want {
			t.Errorf("%v.SOCKSReply() = %#x, want %#x", r, got, want)
		}
	}
}

func TestSendme(t *testing.T) {
	var m Sendme
	for i := range m.Tag {
		m.Tag[i] = byte(i + 1)
	}
	roundTrip(t, "SENDME", m, (*Sendme).Marshal, ParseSendme)
	roundTrip(t, "SENDME zero tag", Sendme{}, (*Sendme).Marshal, ParseSendme)
	for _, v := range []byte{0, 2, 255} {
		b := make([]byte, SendmeMsgLen)
		b[0] = v
		if _, err := ParseSendme(b); err == nil {
			t.Errorf("SENDME version %d accepted", v)
		}
	}
}

func TestPing(t *testing.T) {
	roundTrip(t, "PING", Ping{Nonce: 0x0102030405060708}, (*Ping).Marshal, ParsePing)
	roundTrip(t, "PING zero", Ping{}, (*Ping).Marshal, ParsePing)
	for _, n := range []int{0, PingMsgLen - 1, PingMsgLen + 1} {
		if _, err := ParsePing(make([]byte, n)); err == nil {
			t.Errorf("ParsePing accepted %d bytes", n)
		}
	}
}

func TestBeginDir(t *testing.T) {
	if err := ParseBeginDir(nil); err != nil {
		t.Errorf("the empty body: %v", err)
	}
	for _, n := range []int{1, 2, MaxRelayData} {
		if err := ParseBeginDir(make([]byte, n)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseBeginDir of %d bytes: %v, want ErrMalformed", n, err)
		}
	}
	if got := RelayBeginDir.String(); got != "BEGIN_DIR" {
		t.Errorf("RelayBeginDir prints as %q", got)
	}
}

func testExtend(ap string) Extend {
	m := Extend{AddrPort: netip.MustParseAddrPort(ap), Handshake: testHandshake(3)}
	for i := range m.NodeID {
		m.NodeID[i] = byte(0x80 + i)
	}
	return m
}

func TestExtendRoundTrip(t *testing.T) {
	for _, ap := range []string{"192.0.2.9:9001", "[2001:db8::9]:1", "255.255.255.255:65535"} {
		roundTrip(t, "EXTEND "+ap, testExtend(ap), (*Extend).Marshal, ParseExtend)
	}
}

func TestExtendInvalid(t *testing.T) {
	b4, _ := (&Extend{AddrPort: netip.MustParseAddrPort("192.0.2.9:9001"), Handshake: testHandshake(3)}).Marshal()
	set := func(b []byte, off int, v byte) []byte { b = bytes.Clone(b); b[off] = v; return b }
	typeOff, portOff := extendTypeOff, extendPortOff
	for name, b := range map[string][]byte{
		"address type 0":   set(b4, typeOff, 0),
		"address type 3":   set(b4, typeOff, 3),
		"port 0":           set(set(b4, portOff, 0), portOff+1, 0),
		"IPv4 slot tail":   set(b4, extendAddrOff+ipv4Len, 1),
		"IPv4 slot end":    set(b4, extendPortOff-1, 1),
		"unspecified IPv4": set(set(set(set(b4, typeOff+1, 0), typeOff+2, 0), typeOff+3, 0), typeOff+4, 0),
	} {
		if _, err := ParseExtend(b); err == nil {
			t.Errorf("EXTEND %s accepted", name)
		}
	}
	for name, m := range map[string]Extend{
		"no address":      {Handshake: testHandshake(0)},
		"unspecified":     testExtend("[::]:1"),
		"port 0":          testExtend("192.0.2.1:0"),
		"IPv4-mapped":     testExtend("[::ffff:1.2.3.4]:1"),
		"short handshake": {AddrPort: netip.MustParseAddrPort("192.0.2.1:1"), Handshake: make([]byte, 10)},
	} {
		if _, err := m.Marshal(); err == nil {
			t.Errorf("marshal EXTEND %s accepted", name)
		}
	}
}

func TestExtended(t *testing.T) {
	roundTrip(t, "EXTENDED", Extended{Handshake: testHandshake(4)}, (*Extended).Marshal, ParseExtended)
	b, _ := (&Extended{Handshake: testHandshake(4)}).Marshal()
	b[HandshakeLen] = 1
	if _, err := ParseExtended(b); err == nil {
		t.Error("EXTENDED with nonzero padding accepted")
	}
	if _, err := (&Extended{Handshake: make([]byte, HandshakeLen+1)}).Marshal(); err == nil {
		t.Error("long EXTENDED handshake accepted")
	}
}

func TestParsedHandshakesDoNotAlias(t *testing.T) {
	b, _ := (&Extended{Handshake: testHandshake(4)}).Marshal()
	m, _ := ParseExtended(b)
	b[0] ^= 0xff
	if m.Handshake[0] == b[0] {
		t.Fatal("EXTENDED handshake aliases its input")
	}
}
