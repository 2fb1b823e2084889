package socks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"veil/onion"
)

// This file holds every byte of the SOCKS5 wire format (RFC 1928) and its
// username/password subnegotiation (RFC 1929), with a pure Parse/Marshal
// pair per client message and an io.Reader form that reads exactly one
// message. SPEC.md gives the decisions the RFCs leave open.

// Protocol versions.
const (
	Version         = 0x05 // RFC 1928 §3: VER of every SOCKS5 message
	UserPassVersion = 0x01 // RFC 1929 §2: VER of the subnegotiation
)

// Authentication methods (RFC 1928 §3). IANA's registry; append-only.
const (
	MethodNoAuth       = 0x00
	MethodGSSAPI       = 0x01 // never chosen: not supported
	MethodUserPass     = 0x02
	MethodNoAcceptable = 0xFF
)

// Commands (RFC 1928 §4). Append-only.
const (
	CmdConnect      = 0x01
	CmdBind         = 0x02 // refused with ReplyCommandNotSupported
	CmdUDPAssociate = 0x03 // refused with ReplyCommandNotSupported
)

// Address types (RFC 1928 §5). Append-only.
const (
	AtypIPv4   = 0x01 // 4 bytes
	AtypDomain = 0x03 // length (1, 1..255) | name
	AtypIPv6   = 0x04 // 16 bytes
)

// Reply codes (RFC 1928 §6). Append-only.
const (
	ReplySucceeded            = 0x00
	ReplyGeneralFailure       = 0x01
	ReplyNotAllowed           = 0x02 // connection not allowed by ruleset
	ReplyNetworkUnreachable   = 0x03
	ReplyHostUnreachable      = 0x04
	ReplyConnectionRefused    = 0x05
	ReplyTTLExpired           = 0x06
	ReplyCommandNotSupported  = 0x07
	ReplyAddrTypeNotSupported = 0x08
)

// Subnegotiation status (RFC 1929 §2): 0 is success, anything else fails
// and the server closes the connection.
const (
	UserPassSuccess = 0x00
	UserPassFailure = 0x01
)

// Field sizes and limits.
const (
	ipv4Len     = 4
	ipv6Len     = 16
	portLen     = 2
	MaxMethods  = 255 // NMETHODS is one byte
	MaxFieldLen = 255 // ULEN, PLEN and a domain's length are one byte

	greetingHeaderLen = 2 // VER NMETHODS
	requestHeaderLen  = 4 // VER CMD RSV ATYP
	// MaxRequestLen is the longest request: header, length byte, a
	// 255-byte domain, port.
	MaxRequestLen = requestHeaderLen + 1 + MaxFieldLen + portLen
	// MaxUserPassLen is the longest subnegotiation request.
	MaxUserPassLen = 1 + 1 + MaxFieldLen + 1 + MaxFieldLen
	// MaxReplyLen is the longest reply this package writes or reads
	// (an IPv6 bound address; it never sends a domain).
	MaxReplyLen = requestHeaderLen + ipv6Len + portLen
)

// Errors. Every parse failure is a *ParseError whose Kind is one of these,
// so callers branch with errors.Is.
var (
	// ErrVersion means the version byte is wrong: the peer does not speak
	// this protocol, and the server closes without a reply.
	ErrVersion = errors.New("socks: wrong protocol version")
	// ErrTruncated means the byte slice ends before the message does.
	ErrTruncated = errors.New("socks: truncated message")
	// ErrMalformed means the bytes break the RFCs or SPEC.md's rules.
	ErrMalformed = errors.New("socks: malformed message")
	// ErrCommand means a command other than CONNECT, BIND and UDP
	// ASSOCIATE.
	ErrCommand = errors.New("socks: unknown command")
	// ErrAddrType means an address type other than IPv4, domain and IPv6.
	ErrAddrType = errors.New("socks: unknown address type")
)

// ParseError says why a message was refused. It unwraps to Kind (one of
// the sentinels above) and to Err, the cause, when there is one.
type ParseError struct {
	Msg  string // what was wrong, prefixed "socks: parse <message>: "
	Kind error
	Err  error // may be nil
}

func (e *ParseError) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// Unwrap returns Kind and, if set, Err.
func (e *ParseError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// Reply returns the reply code a server sends for a refused request:
// ReplyCommandNotSupported for ErrCommand, ReplyAddrTypeNotSupported for
// ErrAddrType, ReplyGeneralFailure otherwise. (ErrVersion gets no reply.)
func (e *ParseError) Reply() byte {
	switch e.Kind {
	case ErrCommand:
		return ReplyCommandNotSupported
	case ErrAddrType:
		return ReplyAddrTypeNotSupported
	}
	return ReplyGeneralFailure
}

func perr(kind error, cause error, format string, args ...any) *ParseError {
	return &ParseError{Msg: fmt.Sprintf(format, args...), Kind: kind, Err: cause}
}

// Greeting is the client's first message. RFC 1928 §3:
//
//	VER (1, = 5) | NMETHODS (1, 1..255) | METHODS (NMETHODS)
type Greeting struct {
	Methods []byte // 1..255 method codes, in the client's order
}

// Offers reports whether the client offered method m.
func (g Greeting) Offers(m byte) bool {
	for _, x := range g.Methods {
		if x == m {
			return true
		}
	}
	return false
}

// ParseGreeting decodes the greeting at the start of b and returns it with
// the number of bytes it took.
func ParseGreeting(b []byte) (Greeting, int, error) {
	if len(b) < greetingHeaderLen {
		return Greeting{}, 0, perr(ErrTruncated, nil, "socks: parse greeting: %d bytes, want at least %d", len(b), greetingHeaderLen)
	}
	if b[0] != Version {
		return Greeting{}, 0, perr(ErrVersion, nil, "socks: parse greeting: version %#02x, want %#02x", b[0], Version)
	}
	n := int(b[1])
	if n == 0 {
		return Greeting{}, 0, perr(ErrMalformed, nil, "socks: parse greeting: no methods")
	}
	if len(b) < greetingHeaderLen+n {
		return Greeting{}, 0, perr(ErrTruncated, nil, "socks: parse greeting: %d bytes, want %d", len(b), greetingHeaderLen+n)
	}
	return Greeting{Methods: append([]byte(nil), b[2:2+n]...)}, greetingHeaderLen + n, nil
}

// MarshalGreeting encodes g.
func MarshalGreeting(g Greeting) ([]byte, error) {
	if len(g.Methods) < 1 || len(g.Methods) > MaxMethods {
		return nil, fmt.Errorf("socks: marshal greeting: %d methods, want 1..%d", len(g.Methods), MaxMethods)
	}
	return append([]byte{Version, byte(len(g.Methods))}, g.Methods...), nil
}

// ReadGreeting reads exactly one greeting from r.
func ReadGreeting(r io.Reader) (Greeting, error) {
	var buf [greetingHeaderLen + MaxMethods]byte
	if _, err := io.ReadFull(r, buf[:greetingHeaderLen]); err != nil {
		return Greeting{}, fmt.Errorf("socks: read greeting: %w", err)
	}
	// Check the header before waiting for a body that may never come.
	if buf[0] != Version || buf[1] == 0 {
		_, _, err := ParseGreeting(buf[:greetingHeaderLen])
		return Greeting{}, err
	}
	n := greetingHeaderLen + int(buf[1])
	if _, err := io.ReadFull(r, buf[greetingHeaderLen:n]); err != nil {
		return Greeting{}, fmt.Errorf("socks: read greeting: %w", err)
	}
	g, _, err := ParseGreeting(buf[:n])
	return g, err
}

// MarshalMethodSelection encodes the server's choice of method. RFC 1928 §3:
//
//	VER (1, = 5) | METHOD (1; 0xFF: none acceptable)
func MarshalMethodSelection(method byte) []byte {
	return []byte{Version, method}
}

// Credentials are what a client sent in the username/password
// subnegotiation; both empty when it used no authentication. They are
// isolation keys, not secrets this package checks: streams with different
// credentials go over different circuits (the Connector's job).
type Credentials struct {
	Username, Password string
}

// ParseUserPass decodes a username/password request at the start of b.
// RFC 1929 §2:
//
//	VER (1, = 1) | ULEN (1, 1..255) | UNAME (ULEN) | PLEN (1, 0..255) | PASSWD (PLEN)
//
// PLEN may be 0, unlike RFC 1929's 1..255: curl sends an empty password
// for a proxy URL with a user and no password (socks5h://alice@host), and
// that is a fine isolation key (SPEC.md §2).
func ParseUserPass(b []byte) (Credentials, int, error) {
	if len(b) < 2 {
		return Credentials{}, 0, perr(ErrTruncated, nil, "socks: parse username/password: %d bytes, want at least 2", len(b))
	}
	if b[0] != UserPassVersion {
		return Credentials{}, 0, perr(ErrVersion, nil, "socks: parse username/password: version %#02x, want %#02x", b[0], UserPassVersion)
	}
	ulen := int(b[1])
	if ulen == 0 {
		return Credentials{}, 0, perr(ErrMalformed, nil, "socks: parse username/password: empty username")
	}
	if len(b) < 2+ulen+1 {
		return Credentials{}, 0, perr(ErrTruncated, nil, "socks: parse username/password: %d bytes, want at least %d", len(b), 2+ulen+1)
	}
	plen := int(b[2+ulen])
	n := 2 + ulen + 1 + plen
	if len(b) < n {
		return Credentials{}, 0, perr(ErrTruncated, nil, "socks: parse username/password: %d bytes, want %d", len(b), n)
	}
	return Credentials{Username: string(b[2 : 2+ulen]), Password: string(b[3+ulen : n])}, n, nil
}

// MarshalUserPass encodes c as a subnegotiation request.
func MarshalUserPass(c Credentials) ([]byte, error) {
	if len(c.Username) < 1 || len(c.Username) > MaxFieldLen {
		return nil, fmt.Errorf("socks: marshal username/password: username length %d outside 1..%d", len(c.Username), MaxFieldLen)
	}
	if len(c.Password) > MaxFieldLen {
		return nil, fmt.Errorf("socks: marshal username/password: password length %d over %d", len(c.Password), MaxFieldLen)
	}
	b := make([]byte, 0, 3+len(c.Username)+len(c.Password))
	b = append(b, UserPassVersion, byte(len(c.Username)))
	b = append(b, c.Username...)
	b = append(b, byte(len(c.Password)))
	return append(b, c.Password...), nil
}

// ReadUserPass reads exactly one subnegotiation request from r.
func ReadUserPass(r io.Reader) (Credentials, error) {
	var buf [MaxUserPassLen]byte
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return Credentials{}, fmt.Errorf("socks: read username/password: %w", err)
	}
	if buf[0] != UserPassVersion || buf[1] == 0 {
		_, _, err := ParseUserPass(buf[:2])
		return Credentials{}, err
	}
	n := 2 + int(buf[1]) + 1
	if _, err := io.ReadFull(r, buf[2:n]); err != nil {
		return Credentials{}, fmt.Errorf("socks: read username/password: %w", err)
	}
	plen := int(buf[n-1])
	if _, err := io.ReadFull(r, buf[n:n+plen]); err != nil {
		return Credentials{}, fmt.Errorf("socks: read username/password: %w", err)
	}
	c, _, err := ParseUserPass(buf[:n+plen])
	return c, err
}

// MarshalUserPassStatus encodes the server's answer. RFC 1929 §2:
//
//	VER (1, = 1) | STATUS (1; 0 success)
func MarshalUserPassStatus(status byte) []byte {
	return []byte{UserPassVersion, status}
}

// Request is a client's request. RFC 1928 §4:
//
//	VER (1, = 5) | CMD (1) | RSV (1, = 0) | ATYP (1) | DST.ADDR | DST.PORT (2, big-endian)
//	DST.ADDR: IPv4 (4) | IPv6 (16) | LEN (1, 1..255) NAME (LEN)
//
// Exactly one of Addr and Host is set. Host is a name for the exit to
// resolve (G6: never resolved here) and follows onion.Begin's hostname
// rules. A domain that is an IP literal ("127.0.0.1", "::1") and an
// IPv4-mapped IPv6 address become an IPv4 or IPv6 Addr: that is the
// canonical form, the only one MarshalRequest writes (SPEC.md §3).
type Request struct {
	Cmd  byte // CmdConnect, CmdBind or CmdUDPAssociate
	Addr netip.Addr
	Host string
	Port uint16 // nonzero for CONNECT
}

// ParseRequest decodes the request at the start of b and returns it in
// canonical form with the number of bytes it took.
func ParseRequest(b []byte) (Request, int, error) {
	if len(b) < requestHeaderLen {
		return Request{}, 0, perr(ErrTruncated, nil, "socks: parse request: %d bytes, want at least %d", len(b), requestHeaderLen)
	}
	if b[0] != Version {
		return Request{}, 0, perr(ErrVersion, nil, "socks: parse request: version %#02x, want %#02x", b[0], Version)
	}
	var addrLen int
	switch b[3] {
	case AtypIPv4:
		addrLen = ipv4Len
	case AtypIPv6:
		addrLen = ipv6Len
	case AtypDomain:
		if len(b) < requestHeaderLen+1 {
			return Request{}, 0, perr(ErrTruncated, nil, "socks: parse request: no domain length")
		}
		addrLen = 1 + int(b[requestHeaderLen])
	default:
		return Request{}, 0, perr(ErrAddrType, nil, "socks: parse request: address type %#02x", b[3])
	}
	n := requestHeaderLen + addrLen + portLen
	if len(b) < n {
		return Request{}, 0, perr(ErrTruncated, nil, "socks: parse request: %d bytes, want %d", len(b), n)
	}
	// The whole frame is in hand: check fields in wire order.
	r := Request{Cmd: b[1]}
	switch r.Cmd {
	case CmdConnect, CmdBind, CmdUDPAssociate:
	default:
		return Request{}, 0, perr(ErrCommand, nil, "socks: parse request: command %#02x", r.Cmd)
	}
	if b[2] != 0 {
		return Request{}, 0, perr(ErrMalformed, nil, "socks: parse request: reserved byte %#02x, want 0", b[2])
	}
	addr := b[requestHeaderLen : requestHeaderLen+addrLen]
	switch b[3] {
	case AtypIPv4:
		r.Addr = netip.AddrFrom4([4]byte(addr))
	case AtypIPv6:
		r.Addr = netip.AddrFrom16([16]byte(addr)).Unmap()
	default:
		if len(addr) == 1 {
			return Request{}, 0, perr(ErrMalformed, nil, "socks: parse request: empty domain")
		}
		r.Host = string(addr[1:])
		if a, err := netip.ParseAddr(r.Host); err == nil {
			if a.Zone() != "" {
				return Request{}, 0, perr(ErrMalformed, nil, "socks: parse request: address %q has a zone", r.Host)
			}
			r.Addr, r.Host = a.Unmap(), ""
		}
	}
	r.Port = binary.BigEndian.Uint16(b[n-portLen:])
	if err := r.check("parse"); err != nil {
		return Request{}, 0, err
	}
	return r, n, nil
}

// check enforces the rules a canonical request follows.
func (r *Request) check(op string) error {
	switch r.Cmd {
	case CmdConnect, CmdBind, CmdUDPAssociate:
	default:
		return perr(ErrCommand, nil, "socks: %s request: command %#02x", op, r.Cmd)
	}
	if r.Addr.IsValid() == (r.Host != "") {
		return perr(ErrMalformed, nil, "socks: %s request: want exactly one of address and host", op)
	}
	if r.Addr.IsValid() && (r.Addr.Zone() != "" || r.Addr.Is4In6()) {
		return perr(ErrMalformed, nil, "socks: %s request: address %v is not canonical", op, r.Addr)
	}
	if r.Host != "" {
		if _, err := netip.ParseAddr(r.Host); err == nil {
			return perr(ErrMalformed, nil, "socks: %s request: host %q is an IP literal, send it as an address", op, r.Host)
		}
		// The name goes to the exit in a BEGIN, so it must pass BEGIN's
		// rules: ask onion.Begin rather than keep a second copy that
		// could drift. Port 1 stands in because BIND and UDP ASSOCIATE
		// may carry port 0; only the name is checked here.
		b := onion.Begin{Hostname: r.Host, Port: 1}
		if _, err := b.Marshal(); err != nil {
			return perr(ErrMalformed, err, "socks: %s request: host refused", op)
		}
	}
	// RFC 1928 §7 lets a UDP ASSOCIATE (and in practice a BIND) carry
	// zeros; a CONNECT to port 0 reaches nothing.
	if r.Cmd == CmdConnect && r.Port == 0 {
		return perr(ErrMalformed, nil, "socks: %s request: CONNECT to port 0", op)
	}
	return nil
}

// MarshalRequest encodes r, which must be in canonical form.
func MarshalRequest(r Request) ([]byte, error) {
	if err := r.check("marshal"); err != nil {
		return nil, err
	}
	b := make([]byte, 0, MaxRequestLen)
	b = append(b, Version, r.Cmd, 0)
	switch {
	case r.Addr.Is4():
		b = append(append(b, AtypIPv4), r.Addr.AsSlice()...)
	case r.Addr.Is6():
		b = append(append(b, AtypIPv6), r.Addr.AsSlice()...)
	default:
		b = append(b, AtypDomain, byte(len(r.Host)))
		b = append(b, r.Host...)
	}
	return binary.BigEndian.AppendUint16(b, r.Port), nil
}

// ReadRequest reads exactly one request from r. It stops early, without
// waiting for the rest, when the version or address type is wrong.
func ReadRequest(r io.Reader) (Request, error) {
	var buf [MaxRequestLen]byte
	if _, err := io.ReadFull(r, buf[:requestHeaderLen]); err != nil {
		return Request{}, fmt.Errorf("socks: read request: %w", err)
	}
	n := requestHeaderLen
	if buf[0] == Version && buf[3] == AtypDomain {
		if _, err := io.ReadFull(r, buf[n:n+1]); err != nil {
			return Request{}, fmt.Errorf("socks: read request: %w", err)
		}
		n++
	}
	_, _, err := ParseRequest(buf[:n])
	if !errors.Is(err, ErrTruncated) {
		return Request{}, err // the header alone settles it
	}
	var want int
	switch buf[3] {
	case AtypIPv4:
		want = requestHeaderLen + ipv4Len + portLen
	case AtypIPv6:
		want = requestHeaderLen + ipv6Len + portLen
	default:
		want = requestHeaderLen + 1 + int(buf[requestHeaderLen]) + portLen
	}
	if _, err := io.ReadFull(r, buf[n:want]); err != nil {
		return Request{}, fmt.Errorf("socks: read request: %w", err)
	}
	req, _, err := ParseRequest(buf[:want])
	return req, err
}

// Reply is the server's answer to a request. RFC 1928 §6:
//
//	VER (1, = 5) | REP (1) | RSV (1, = 0) | ATYP (1) | BND.ADDR | BND.PORT (2, big-endian)
//
// This package writes only IPv4 and IPv6 bound addresses; an invalid Bind
// is sent as 0.0.0.0:0 (the address is unknown, as it is through a circuit).
type Reply struct {
	Code byte // one of the Reply… constants
	Bind netip.AddrPort
}

// MarshalReply encodes r.
func MarshalReply(r Reply) []byte {
	a, port := r.Bind.Addr().Unmap(), r.Bind.Port()
	if !a.IsValid() {
		a, port = netip.IPv4Unspecified(), 0
	}
	b := make([]byte, 0, MaxReplyLen)
	b = append(b, Version, r.Code, 0)
	if a.Is4() {
		b = append(append(b, AtypIPv4), a.AsSlice()...)
	} else {
		b = append(append(b, AtypIPv6), a.WithZone("").AsSlice()...)
	}
	return binary.BigEndian.AppendUint16(b, port)
}

// ParseReply decodes a reply at the start of b, for clients and tests. It
// accepts IPv4 and IPv6 bound addresses only.
func ParseReply(b []byte) (Reply, int, error) {
	if len(b) < requestHeaderLen {
		return Reply{}, 0, perr(ErrTruncated, nil, "socks: parse reply: %d bytes, want at least %d", len(b), requestHeaderLen)
	}
	if b[0] != Version {
		return Reply{}, 0, perr(ErrVersion, nil, "socks: parse reply: version %#02x, want %#02x", b[0], Version)
	}
	var addrLen int
	switch b[3] {
	case AtypIPv4:
		addrLen = ipv4Len
	case AtypIPv6:
		addrLen = ipv6Len
	default:
		return Reply{}, 0, perr(ErrAddrType, nil, "socks: parse reply: address type %#02x", b[3])
	}
	n := requestHeaderLen + addrLen + portLen
	if len(b) < n {
		return Reply{}, 0, perr(ErrTruncated, nil, "socks: parse reply: %d bytes, want %d", len(b), n)
	}
	if b[2] != 0 {
		return Reply{}, 0, perr(ErrMalformed, nil, "socks: parse reply: reserved byte %#02x, want 0", b[2])
	}
	a, _ := netip.AddrFromSlice(b[requestHeaderLen : requestHeaderLen+addrLen])
	return Reply{Code: b[1], Bind: netip.AddrPortFrom(a, binary.BigEndian.Uint16(b[n-portLen:]))}, n, nil
}

// ReadReply reads exactly one reply from r.
func ReadReply(r io.Reader) (Reply, error) {
	var buf [MaxReplyLen]byte
	if _, err := io.ReadFull(r, buf[:requestHeaderLen]); err != nil {
		return Reply{}, fmt.Errorf("socks: read reply: %w", err)
	}
	_, _, err := ParseReply(buf[:requestHeaderLen])
	if !errors.Is(err, ErrTruncated) {
		return Reply{}, err
	}
	want := requestHeaderLen + ipv4Len + portLen
	if buf[3] == AtypIPv6 {
		want = requestHeaderLen + ipv6Len + portLen
	}
	if _, err := io.ReadFull(r, buf[requestHeaderLen:want]); err != nil {
		return Reply{}, fmt.Errorf("socks: read reply: %w", err)
	}
	rep, _, err := ParseReply(buf[:want])
	return rep, err
}
