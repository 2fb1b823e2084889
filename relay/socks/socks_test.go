package socks

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

// Valid encodings, written out byte by byte from RFC 1928 and RFC 1929.
var (
	validGreetings = [][]byte{
		{0x05, 0x01, 0x00},             // no-auth only (curl)
		{0x05, 0x02, 0x00, 0x02},       // no-auth and username/password
		{0x05, 0x03, 0x00, 0x01, 0x02}, // with GSSAPI too
		{0x05, 0x02, 0x80, 0x80},       // private method, repeated: kept as sent
	}
	validUserPass = [][]byte{
		{0x01, 0x01, 'a', 0x01, 'b'},
		{0x01, 0x05, 'a', 'l', 'i', 'c', 'e', 0x00}, // empty password (curl, SPEC.md §2)
		append(append([]byte{0x01, 0xff}, bytes.Repeat([]byte{'u'}, 255)...),
			append([]byte{0xff}, bytes.Repeat([]byte{0}, 255)...)...), // longest; any bytes
	}
	validRequests = []struct {
		b    []byte
		want Request
	}{
		{[]byte{0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0x00, 0x50},
			Request{Cmd: CmdConnect, Addr: netip.MustParseAddr("127.0.0.1"), Port: 80}},
		{append(append([]byte{0x05, 0x01, 0x00, 0x04}, netip.MustParseAddr("2001:db8::1").AsSlice()...), 0x01, 0xbb),
			Request{Cmd: CmdConnect, Addr: netip.MustParseAddr("2001:db8::1"), Port: 443}},
		{append(append([]byte{0x05, 0x01, 0x00, 0x03, 11}, "example.com"...), 0x1f, 0x90),
			Request{Cmd: CmdConnect, Host: "example.com", Port: 8080}},
		{append(append([]byte{0x05, 0x01, 0x00, 0x03, 12}, "Ex_a-mple.c."...), 0xff, 0xff),
			Request{Cmd: CmdConnect, Host: "Ex_a-mple.c.", Port: 65535}},
		{append(append([]byte{0x05, 0x01, 0x00, 0x03, 255}, strings.Repeat("a", 255)...), 0, 1),
			Request{Cmd: CmdConnect, Host: strings.Repeat("a", 255), Port: 1}},
		{[]byte{0x05, 0x02, 0x00, 0x01, 10, 0, 0, 1, 0x00, 0x15},
			Request{Cmd: CmdBind, Addr: netip.MustParseAddr("10.0.0.1"), Port: 21}},
		{[]byte{0x05, 0x03, 0x00, 0x01, 0, 0, 0, 0, 0x00, 0x00}, // UDP ASSOCIATE may send zeros
			Request{Cmd: CmdUDPAssociate, Addr: netip.IPv4Unspecified(), Port: 0}},
	}
)

func TestGreetingRoundTrip(t *testing.T) {
	for _, b := range validGreetings {
		g, n, err := ParseGreeting(b)
		if err != nil || n != len(b) {
			t.Fatalf("ParseGreeting(%x) = %d, %v", b, n, err)
		}
		if !bytes.Equal(g.Methods, b[2:]) {
			t.Errorf("methods %x, want %x", g.Methods, b[2:])
		}
		out, err := MarshalGreeting(g)
		if err != nil || !bytes.Equal(out, b) {
			t.Errorf("MarshalGreeting = %x, %v; want %x", out, err, b)
		}
		rg, err := ReadGreeting(bytes.NewReader(append(b, 0xee))) // trailing byte left unread
		if err != nil || !bytes.Equal(rg.Methods, g.Methods) {
			t.Errorf("ReadGreeting = %v, %v", rg, err)
		}
		checkTruncations(t, b, func(p []byte) error { _, _, err := ParseGreeting(p); return err },
			func(r io.Reader) error { _, err := ReadGreeting(r); return err })
	}
	if !(Greeting{Methods: []byte{0, 2}}).Offers(MethodUserPass) || (Greeting{Methods: []byte{0}}).Offers(MethodUserPass) {
		t.Error("Offers is wrong")
	}
}

func TestUserPassRoundTrip(t *testing.T) {
	for _, b := range validUserPass {
		c, n, err := ParseUserPass(b)
		if err != nil || n != len(b) {
			t.Fatalf("ParseUserPass(%x) = %d, %v", b, n, err)
		}
		out, err := MarshalUserPass(c)
		if err != nil || !bytes.Equal(out, b) {
			t.Errorf("MarshalUserPass = %x, %v; want %x", out, err, b)
		}
		rc, err := ReadUserPass(bytes.NewReader(append(b, 0xee)))
		if err != nil || rc != c {
			t.Errorf("ReadUserPass = %v, %v; want %v", rc, err, c)
		}
		checkTruncations(t, b, func(p []byte) error { _, _, err := ParseUserPass(p); return err },
			func(r io.Reader) error { _, err := ReadUserPass(r); return err })
	}
	c, _, _ := ParseUserPass(validUserPass[1])
	if c != (Credentials{Username: "alice"}) {
		t.Errorf("credentials %+v", c)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	for _, tc := range validRequests {
		r, n, err := ParseRequest(tc.b)
		if err != nil || n != len(tc.b) {
			t.Fatalf("ParseRequest(%x) = %d, %v", tc.b, n, err)
		}
		if r != tc.want {
			t.Errorf("ParseRequest(%x) = %+v, want %+v", tc.b, r, tc.want)
		}
		out, err := MarshalRequest(r)
		if err != nil || !bytes.Equal(out, tc.b) {
			t.Errorf("MarshalRequest = %x, %v; want %x", out, err, tc.b)
		}
		rr, err := ReadRequest(bytes.NewReader(append(tc.b, 0xee)))
		if err != nil || rr != r {
			t.Errorf("ReadRequest = %+v, %v", rr, err)
		}
		checkTruncations(t, tc.b, func(p []byte) error { _, _, err := ParseRequest(p); return err },
			func(r io.Reader) error { _, err := ReadRequest(r); return err })
	}
}

// checkTruncations demands that every proper prefix of a valid encoding is
// ErrTruncated to the slice parser and an unexpected end to the reader.
func checkTruncations(t *testing.T, b []byte, parse func([]byte) error, read func(io.Reader) error) {
	t.Helper()
	for i := range len(b) {
		if err := parse(b[:i]); !errors.Is(err, ErrTruncated) {
			t.Errorf("parse(%x): %v, want ErrTruncated", b[:i], err)
		}
		err := read(bytes.NewReader(b[:i]))
		if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			t.Errorf("read(%x): %v, want an unexpected EOF", b[:i], err)
		}
	}
}

// Non-canonical encodings parse to the canonical Request, whose encoding
// differs (SPEC.md §3).
func TestRequestCanonical(t *testing.T) {
	dom := func(h string) []byte {
		return append(append([]byte{0x05, 0x01, 0x00, 0x03, byte(len(h))}, h...), 0, 80)
	}
	for _, tc := range []struct {
		b    []byte
		want netip.Addr
	}{
		{dom("127.0.0.1"), netip.MustParseAddr("127.0.0.1")},
		{dom("::1"), netip.MustParseAddr("::1")},
		{dom("2001:DB8::1"), netip.MustParseAddr("2001:db8::1")},
		{dom("::ffff:10.1.2.3"), netip.MustParseAddr("10.1.2.3")},
		{append(append([]byte{0x05, 0x01, 0x00, 0x04}, netip.MustParseAddr("::ffff:10.1.2.3").AsSlice()...), 0, 80),
			netip.MustParseAddr("10.1.2.3")},
	} {
		r, _, err := ParseRequest(tc.b)
		if err != nil || r.Host != "" || r.Addr != tc.want || r.Port != 80 {
			t.Errorf("ParseRequest(%x) = %+v, %v; want Addr %v", tc.b, r, err, tc.want)
			continue
		}
		out, err := MarshalRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		if r2, _, err := ParseRequest(out); err != nil || r2 != r {
			t.Errorf("reparse %x = %+v, %v", out, r2, err)
		}
	}
}

func TestParseRefusals(t *testing.T) {
	dom := func(h string) []byte {
		return append(append([]byte{0x05, 0x01, 0x00, 0x03, byte(len(h))}, h...), 0, 80)
	}
	for _, tc := range []struct {
		name  string
		parse func([]byte) error
		b     []byte
		kind  error
		reply byte
	}{
		{"greeting socks4", pg, []byte{0x04, 0x01, 0x00, 0x50}, ErrVersion, 0},
		{"greeting http", pg, []byte("GET / HTTP/1.1\r\n"), ErrVersion, 0},
		{"greeting no methods", pg, []byte{0x05, 0x00}, ErrMalformed, ReplyGeneralFailure},
		{"userpass version 5", pu, []byte{0x05, 0x01, 'a', 0x01, 'b'}, ErrVersion, 0},
		{"userpass empty user", pu, []byte{0x01, 0x00, 0x01, 'b'}, ErrMalformed, ReplyGeneralFailure},
		{"request version 4", pr, []byte{0x04, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0, 80}, ErrVersion, 0},
		{"request cmd 0", pr, []byte{0x05, 0x00, 0x00, 0x01, 1, 2, 3, 4, 0, 80}, ErrCommand, ReplyCommandNotSupported},
		{"request cmd 4", pr, []byte{0x05, 0x04, 0x00, 0x01, 1, 2, 3, 4, 0, 80}, ErrCommand, ReplyCommandNotSupported},
		{"request reserved", pr, []byte{0x05, 0x01, 0x01, 0x01, 1, 2, 3, 4, 0, 80}, ErrMalformed, ReplyGeneralFailure},
		{"request atyp 0", pr, []byte{0x05, 0x01, 0x00, 0x00}, ErrAddrType, ReplyAddrTypeNotSupported},
		{"request atyp 2", pr, []byte{0x05, 0x01, 0x00, 0x02, 1, 2, 3, 4, 0, 80}, ErrAddrType, ReplyAddrTypeNotSupported},
		{"request atyp 5", pr, []byte{0x05, 0x01, 0x00, 0x05}, ErrAddrType, ReplyAddrTypeNotSupported},
		{"port 0", pr, []byte{0x05, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0, 0}, ErrMalformed, ReplyGeneralFailure},
		{"domain port 0", pr, append(append([]byte{0x05, 0x01, 0x00, 0x03, 11}, "example.com"...), 0, 0), ErrMalformed, ReplyGeneralFailure},
		{"empty domain", pr, []byte{0x05, 0x01, 0x00, 0x03, 0x00, 0, 80}, ErrMalformed, ReplyGeneralFailure},
		{"domain space", pr, dom("exa mple.com"), ErrMalformed, ReplyGeneralFailure},
		{"domain NUL", pr, dom("example.com\x00.evil"), ErrMalformed, ReplyGeneralFailure},
		{"domain trailing NUL", pr, dom("example.com\x00"), ErrMalformed, ReplyGeneralFailure},
		{"domain brackets", pr, dom("[::1]"), ErrMalformed, ReplyGeneralFailure},
		{"domain with port", pr, dom("example.com:80"), ErrMalformed, ReplyGeneralFailure},
		{"domain slash", pr, dom("a/b"), ErrMalformed, ReplyGeneralFailure},
		{"domain utf8", pr, dom("exämple.com"), ErrMalformed, ReplyGeneralFailure},
		{"domain empty label", pr, dom("a..b"), ErrMalformed, ReplyGeneralFailure},
		{"domain dot", pr, dom("."), ErrMalformed, ReplyGeneralFailure},
		{"domain short IPv4", pr, dom("10.1"), ErrMalformed, ReplyGeneralFailure},       // inet_aton would read an address
		{"domain number", pr, dom("2130706433"), ErrMalformed, ReplyGeneralFailure},     // 127.0.0.1
		{"domain hex", pr, dom("0x7f.1"), ErrMalformed, ReplyGeneralFailure},            // 127.0.0.1
		{"domain zone", pr, dom("fe80::1%eth0"), ErrMalformed, ReplyGeneralFailure},     // no zones
		{"domain leading zero", pr, dom("01.2.3.4"), ErrMalformed, ReplyGeneralFailure}, // octal to inet_aton
	} {
		err := tc.parse(tc.b)
		var pe *ParseError
		if !errors.Is(err, tc.kind) || !errors.As(err, &pe) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.kind)
			continue
		}
		if tc.kind != ErrVersion && pe.Reply() != tc.reply {
			t.Errorf("%s: reply %#02x, want %#02x", tc.name, pe.Reply(), tc.reply)
		}
		if !strings.HasPrefix(err.Error(), "socks: parse ") {
			t.Errorf("%s: error %q lacks its prefix", tc.name, err)
		}
	}
}

func pg(b []byte) error { _, _, err := ParseGreeting(b); return err }
func pu(b []byte) error { _, _, err := ParseUserPass(b); return err }
func pr(b []byte) error { _, _, err := ParseRequest(b); return err }

// The reader stops at a bad header instead of waiting for a body that a
// confused client may never send.
func TestReadStopsEarly(t *testing.T) {
	for _, tc := range []struct {
		name string
		read func(io.Reader) error
		b    []byte
		kind error
	}{
		{"greeting version", func(r io.Reader) error { _, err := ReadGreeting(r); return err }, []byte{0x04, 0x01}, ErrVersion},
		{"greeting no methods", func(r io.Reader) error { _, err := ReadGreeting(r); return err }, []byte{0x05, 0x00}, ErrMalformed},
		{"userpass version", func(r io.Reader) error { _, err := ReadUserPass(r); return err }, []byte{0x05, 0x01}, ErrVersion},
		{"request version", func(r io.Reader) error { _, err := ReadRequest(r); return err }, []byte{0x04, 0x01, 0x00, 0x01}, ErrVersion},
		{"request atyp", func(r io.Reader) error { _, err := ReadRequest(r); return err }, []byte{0x05, 0x01, 0x00, 0x09}, ErrAddrType},
	} {
		if err := tc.read(bytes.NewReader(tc.b)); !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.kind)
		}
	}
}

func TestMarshalRefusals(t *testing.T) {
	for _, r := range []Request{
		{Cmd: CmdConnect, Port: 80}, // neither
		{Cmd: CmdConnect, Addr: netip.MustParseAddr("1.2.3.4"), Host: "a.b", Port: 80}, // both
		{Cmd: CmdConnect, Host: "127.0.0.1", Port: 80},                                 // IP literal: send as Addr
		{Cmd: CmdConnect, Addr: netip.MustParseAddr("::ffff:1.2.3.4"), Port: 80},       // send as IPv4
		{Cmd: CmdConnect, Addr: netip.MustParseAddr("fe80::1%eth0"), Port: 80},         // zone
		{Cmd: CmdConnect, Host: "a b", Port: 80},
		{Cmd: CmdConnect, Host: strings.Repeat("a", 256), Port: 80},
		{Cmd: CmdConnect, Addr: netip.MustParseAddr("1.2.3.4")}, // port 0
		{Cmd: 0x09, Addr: netip.MustParseAddr("1.2.3.4"), Port: 80},
	} {
		if b, err := MarshalRequest(r); err == nil {
			t.Errorf("MarshalRequest(%+v) = %x, want an error", r, b)
		}
	}
	for _, g := range []Greeting{{}, {Methods: make([]byte, 256)}} {
		if _, err := MarshalGreeting(g); err == nil {
			t.Errorf("MarshalGreeting(%d methods) succeeded", len(g.Methods))
		}
	}
	for _, c := range []Credentials{{}, {Username: strings.Repeat("u", 256)}, {Username: "u", Password: strings.Repeat("p", 256)}} {
		if _, err := MarshalUserPass(c); err == nil {
			t.Errorf("MarshalUserPass(%d, %d) succeeded", len(c.Username), len(c.Password))
		}
	}
}

func TestReplyWire(t *testing.T) {
	for _, tc := range []struct {
		r    Reply
		want []byte
		back Reply
	}{
		{Reply{Code: ReplySucceeded}, []byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0},
			Reply{Code: ReplySucceeded, Bind: netip.MustParseAddrPort("0.0.0.0:0")}},
		{Reply{Code: ReplyNotAllowed, Bind: netip.MustParseAddrPort("10.1.2.3:1080")}, []byte{5, 2, 0, 1, 10, 1, 2, 3, 0x04, 0x38},
			Reply{Code: ReplyNotAllowed, Bind: netip.MustParseAddrPort("10.1.2.3:1080")}},
		{Reply{Code: ReplySucceeded, Bind: netip.MustParseAddrPort("[::ffff:10.1.2.3]:1")}, []byte{5, 0, 0, 1, 10, 1, 2, 3, 0, 1},
			Reply{Code: ReplySucceeded, Bind: netip.MustParseAddrPort("10.1.2.3:1")}},
		{Reply{Code: ReplyHostUnreachable, Bind: netip.MustParseAddrPort("[::1]:443")},
			append(append([]byte{5, 4, 0, 4}, netip.IPv6Loopback().AsSlice()...), 0x01, 0xbb),
			Reply{Code: ReplyHostUnreachable, Bind: netip.MustParseAddrPort("[::1]:443")}},
	} {
		b := MarshalReply(tc.r)
		if !bytes.Equal(b, tc.want) {
			t.Errorf("MarshalReply(%+v) = %x, want %x", tc.r, b, tc.want)
		}
		back, err := ReadReply(bytes.NewReader(b))
		if err != nil || back != tc.back {
			t.Errorf("ReadReply(%x) = %+v, %v; want %+v", b, back, err, tc.back)
		}
		checkTruncations(t, b, func(p []byte) error { _, _, err := ParseReply(p); return err },
			func(r io.Reader) error { _, err := ReadReply(r); return err })
	}
	if _, _, err := ParseReply([]byte{5, 0, 0, 3, 1, 'a', 0, 80}); !errors.Is(err, ErrAddrType) {
		t.Errorf("domain reply: %v", err)
	}
	if got := MarshalMethodSelection(MethodNoAcceptable); !bytes.Equal(got, []byte{5, 0xff}) {
		t.Errorf("method selection %x", got)
	}
	if got := MarshalUserPassStatus(UserPassFailure); !bytes.Equal(got, []byte{1, 1}) {
		t.Errorf("status %x", got)
	}
}
