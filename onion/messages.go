package onion

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
)

// Relay message bodies (SPEC.md §7): what a whole, reassembled message of a
// given RelayCmd carries. Every Parse demands the canonical encoding, so for
// valid b, Marshal(Parse(b)) == b, and Parse(Marshal(m)) == m.

// AddrType says how an address is encoded. Append-only.
type AddrType uint8

const (
	AddrNone     AddrType = 0 // CONNECTED only: no address reported
	AddrIPv4     AddrType = 1 // 4 bytes
	AddrIPv6     AddrType = 2 // 16 bytes
	AddrHostname AddrType = 3 // BEGIN only: length (1, 1..255) | name
)

// Address and message sizes.
const (
	addrTypeLen    = 1
	ipv4Len        = 4
	ipv6Len        = 16
	portLen        = 2
	beginFlagsLen  = 4   // reserved, zero
	MaxHostnameLen = 255 // a DNS name's limit, and a one-byte length
	EndMsgLen      = 1
	SendmeVersion  = 1 // the only SENDME version: authenticated (prop 289)
	SendmeMsgLen   = 1 + TagLen
	PingMsgLen     = 8 // PING and PONG: a nonce the answer echoes

	// ExtendMsgLen is the length of both EXTEND and EXTENDED, so the two
	// take the same number of cells (SPEC.md §7.5). The address slot is
	// always 16 bytes, so every field sits at a fixed offset.
	ExtendMsgLen = NodeIDLen + addrTypeLen + ipv6Len + portLen + HandshakeLen
)

// Begin asks the exit to open a stream. Exactly one of Addr and Hostname is
// set. SPEC.md §7.1:
//
//	AddrType (1) | Addr | Port (2) | Flags (4, zero)
//	Addr: IPv4 (4) | IPv6 (16) | Len (1, 1..255) Hostname (Len)
//
// A hostname uses only letters, digits, '-', '_' and '.', has no empty
// label except an optional trailing dot, and must not read as an IPv4
// address or number (send those as AddrIPv4). An IPv4 address is never
// sent as IPv4-mapped IPv6, and addresses carry no zone. The exit must
// still check the addresses a hostname resolves to (G6).
type Begin struct {
	Addr     netip.Addr
	Hostname string
	Port     uint16
}

func (m *Begin) check(op string) error {
	if m.Port == 0 {
		return malformedf("onion: %s BEGIN: port 0", op)
	}
	if m.Addr.IsValid() == (m.Hostname != "") {
		return malformedf("onion: %s BEGIN: want exactly one of address and hostname", op)
	}
	if m.Addr.IsValid() {
		return checkAddr(m.Addr, op, "BEGIN")
	}
	return checkHostname(m.Hostname, op)
}

// Marshal encodes m.
func (m *Begin) Marshal() ([]byte, error) {
	if err := m.check("marshal"); err != nil {
		return nil, err
	}
	b := make([]byte, 0, addrTypeLen+1+len(m.Hostname)+portLen+beginFlagsLen)
	if m.Addr.IsValid() {
		b = appendAddr(b, m.Addr)
	} else {
		b = append(b, byte(AddrHostname), byte(len(m.Hostname)))
		b = append(b, m.Hostname...)
	}
	b = binary.BigEndian.AppendUint16(b, m.Port)
	return append(b, 0, 0, 0, 0), nil
}

// ParseBegin decodes a BEGIN body.
func ParseBegin(b []byte) (Begin, error) {
	var m Begin
	if len(b) < addrTypeLen {
		return m, malformedf("onion: parse BEGIN: empty")
	}
	var addrLen int
	switch AddrType(b[0]) {
	case AddrIPv4:
		addrLen = ipv4Len
	case AddrIPv6:
		addrLen = ipv6Len
	case AddrHostname:
		if len(b) < 2 {
			return m, malformedf("onion: parse BEGIN: truncated hostname length")
		}
		addrLen = 1 + int(b[1])
	default:
		return m, malformedf("onion: parse BEGIN: unknown address type %d", b[0])
	}
	if want := addrTypeLen + addrLen + portLen + beginFlagsLen; len(b) != want {
		return m, malformedf("onion: parse BEGIN: %d bytes, want %d", len(b), want)
	}
	addr := b[addrTypeLen : addrTypeLen+addrLen]
	switch AddrType(b[0]) {
	case AddrIPv4:
		m.Addr = netip.AddrFrom4([4]byte(addr))
	case AddrIPv6:
		m.Addr = netip.AddrFrom16([16]byte(addr))
	default:
		m.Hostname = string(addr[1:])
	}
	rest := b[addrTypeLen+addrLen:]
	m.Port = binary.BigEndian.Uint16(rest)
	if flags := binary.BigEndian.Uint32(rest[portLen:]); flags != 0 {
		return Begin{}, malformedf("onion: parse BEGIN: reserved flags %#08x set", flags)
	}
	if err := m.check("parse"); err != nil {
		return Begin{}, err
	}
	return m, nil
}

func checkAddr(a netip.Addr, op, msg string) error {
	if a.Zone() != "" {
		return malformedf("onion: %s %s: address %v has a zone", op, msg, a)
	}
	if a.Is4In6() {
		return malformedf("onion: %s %s: IPv4-mapped address %v, send it as IPv4", op, msg, a)
	}
	return nil
}

func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		return append(append(b, byte(AddrIPv4)), a.AsSlice()...)
	}
	return append(append(b, byte(AddrIPv6)), a.AsSlice()...)
}

func checkHostname(h, op string) error {
	if len(h) < 1 || len(h) > MaxHostnameLen {
		return malformedf("onion: %s BEGIN: hostname length %d outside 1..%d", op, len(h), MaxHostnameLen)
	}
	for i := 0; i < len(h); i++ {
		switch ch := h[i]; {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9', ch == '-', ch == '_', ch == '.':
		default:
			return malformedf("onion: %s BEGIN: hostname has forbidden byte %q at %d", op, ch, i)
		}
	}
	name := strings.TrimSuffix(h, ".")
	if name == "" || strings.Contains(name, "..") || name[0] == '.' {
		return malformedf("onion: %s BEGIN: hostname %q has an empty label", op, h)
	}
	// A resolver may read "10.1", "2130706433" or "0x7f.1" as an IPv4
	// address (inet_aton), so a name whose last label is numeric is an
	// address in disguise: refuse it, as the WHATWG URL parser does.
	last := name[strings.LastIndexByte(name, '.')+1:]
	if isDigits(last) || (len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) {
		return malformedf("onion: %s BEGIN: hostname %q reads as an IPv4 address, send it as one", op, h)
	}
	return nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Connected reports the address the exit connected to; the zero Addr means
// none is reported. SPEC.md §7.2:
//
//	AddrType (1: 0 none, 1 IPv4, 2 IPv6) | Addr (0, 4 or 16)
type Connected struct {
	Addr netip.Addr
}

// Marshal encodes m.
func (m *Connected) Marshal() ([]byte, error) {
	if !m.Addr.IsValid() {
		return []byte{byte(AddrNone)}, nil
	}
	if err := checkAddr(m.Addr, "marshal", "CONNECTED"); err != nil {
		return nil, err
	}
	return appendAddr(make([]byte, 0, addrTypeLen+ipv6Len), m.Addr), nil
}

// ParseConnected decodes a CONNECTED body.
func ParseConnected(b []byte) (Connected, error) {
	var m Connected
	if len(b) < addrTypeLen {
		return m, malformedf("onion: parse CONNECTED: empty")
	}
	want := addrTypeLen
	switch AddrType(b[0]) {
	case AddrNone:
	case AddrIPv4:
		want += ipv4Len
	case AddrIPv6:
		want += ipv6Len
	default:
		return m, malformedf("onion: parse CONNECTED: unknown address type %d", b[0])
	}
	if len(b) != want {
		return m, malformedf("onion: parse CONNECTED: %d bytes, want %d", len(b), want)
	}
	switch AddrType(b[0]) {
	case AddrIPv4:
		m.Addr = netip.AddrFrom4([4]byte(b[1:]))
	case AddrIPv6:
		m.Addr = netip.AddrFrom16([16]byte(b[1:]))
		if err := checkAddr(m.Addr, "parse", "CONNECTED"); err != nil {
			return Connected{}, err
		}
	}
	return m, nil
}

// EndReason says why a stream ended. Append-only; 0 is invalid. Parsers
// accept unknown nonzero values (a newer peer may send them).
type EndReason uint8

const (
	EndMisc           EndReason = 1
	EndResolveFailed  EndReason = 2
	EndConnectRefused EndReason = 3
	EndExitPolicy     EndReason = 4
	EndDestroy        EndReason = 5 // the circuit is going away
	EndDone           EndReason = 6 // closed normally
	EndTimeout        EndReason = 7
	EndNoRoute        EndReason = 8
	EndHibernating    EndReason = 9
	EndInternal       EndReason = 10
	EndResourceLimit  EndReason = 11
	EndConnReset      EndReason = 12
	EndProtocol       EndReason = 13
	EndNetUnreach     EndReason = 14
	EndHostUnreach    EndReason = 15
	numEndReasons               = 16
)

var endNames = [numEndReasons]string{"", "MISC", "RESOLVEFAILED", "CONNECTREFUSED", "EXITPOLICY", "DESTROY",
	"DONE", "TIMEOUT", "NOROUTE", "HIBERNATING", "INTERNAL", "RESOURCELIMIT", "CONNRESET", "PROTOCOL",
	"NETUNREACH", "HOSTUNREACH"}

func (r EndReason) String() string {
	if r != 0 && r < numEndReasons {
		return endNames[r]
	}
	return "EndReason(" + strconv.Itoa(int(r)) + ")"
}

// SOCKS5 reply codes (RFC 1928 §6).
const (
	socksGeneralFailure = 0x01
	socksNotAllowed     = 0x02
	socksNetUnreachable = 0x03
	socksHostUnreach    = 0x04
	socksConnRefused    = 0x05
	socksTTLExpired     = 0x06
)

// SOCKSReply maps r to the RFC 1928 reply code the SOCKS front door sends
// when a stream fails to open.
func (r EndReason) SOCKSReply() byte {
	switch r {
	case EndExitPolicy:
		return socksNotAllowed
	case EndNetUnreach:
		return socksNetUnreachable
	case EndResolveFailed, EndHostUnreach, EndNoRoute:
		return socksHostUnreach
	case EndConnectRefused:
		return socksConnRefused
	case EndTimeout:
		return socksTTLExpired
	}
	return socksGeneralFailure
}

// End closes a stream. SPEC.md §7.3:
//
//	Reason (1, nonzero)
type End struct {
	Reason EndReason
}

// Marshal encodes m.
func (m *End) Marshal() ([]byte, error) {
	if m.Reason == 0 {
		return nil, malformedf("onion: marshal END: reason 0 is reserved")
	}
	return []byte{byte(m.Reason)}, nil
}

// ParseEnd decodes an END body.
func ParseEnd(b []byte) (End, error) {
	if len(b) != EndMsgLen {
		return End{}, malformedf("onion: parse END: %d bytes, want %d", len(b), EndMsgLen)
	}
	if b[0] == 0 {
		return End{}, malformedf("onion: parse END: reason 0 is reserved")
	}
	return End{Reason: EndReason(b[0])}, nil
}

// Ping is the body of PING and of the PONG that answers it: the answer
// echoes the nonce, so a late PONG is not taken for a fresh one. SPEC.md
// §7.8:
//
//	Nonce (8)
type Ping struct {
	Nonce uint64
}

// Marshal encodes m.
func (m *Ping) Marshal() ([]byte, error) {
	return binary.BigEndian.AppendUint64(make([]byte, 0, PingMsgLen), m.Nonce), nil
}

// ParsePing decodes a PING or PONG body.
func ParsePing(b []byte) (Ping, error) {
	if len(b) != PingMsgLen {
		return Ping{}, malformedf("onion: parse PING: %d bytes, want %d", len(b), PingMsgLen)
	}
	return Ping{Nonce: binary.BigEndian.Uint64(b)}, nil
}

// Sendme grants flow-control credit and proves receipt: Tag is the
// endpoint-layer GCM tag of the cell that completed the increment
// (window.go). SPEC.md §7.4:
//
//	Version (1, = 1) | Tag (16)
type Sendme struct {
	Tag [TagLen]byte
}

// Marshal encodes m.
func (m *Sendme) Marshal() ([]byte, error) {
	b := make([]byte, SendmeMsgLen)
	b[0] = SendmeVersion
	copy(b[1:], m.Tag[:])
	return b, nil
}

// ParseSendme decodes a SENDME body.
func ParseSendme(b []byte) (Sendme, error) {
	if len(b) != SendmeMsgLen {
		return Sendme{}, malformedf("onion: parse SENDME: %d bytes, want %d", len(b), SendmeMsgLen)
	}
	if b[0] != SendmeVersion {
		return Sendme{}, malformedf("onion: parse SENDME: version %d, want %d", b[0], SendmeVersion)
	}
	return Sendme{Tag: [TagLen]byte(b[1:])}, nil
}

// Extend asks the last hop to extend the circuit to the relay NodeID at
// AddrPort with the handshake request Handshake. SPEC.md §7.5, exactly
// ExtendMsgLen bytes:
//
//	NodeID (32) | AddrType (1: 1 IPv4, 2 IPv6) |
//	Addr (16: IPv4 in the first 4, the rest zero) | Port (2) |
//	Handshake (HandshakeLen)
//
// The address is not unspecified, not IPv4-mapped, has no zone, and the
// port is nonzero.
type Extend struct {
	NodeID    [NodeIDLen]byte
	AddrPort  netip.AddrPort
	Handshake []byte
}

func (m *Extend) check(op string) error {
	a := m.AddrPort.Addr()
	if !a.IsValid() || a.IsUnspecified() {
		return malformedf("onion: %s EXTEND: unusable address %v", op, a)
	}
	if m.AddrPort.Port() == 0 {
		return malformedf("onion: %s EXTEND: port 0", op)
	}
	if len(m.Handshake) != HandshakeLen {
		return malformedf("onion: %s EXTEND: handshake is %d bytes, want %d", op, len(m.Handshake), HandshakeLen)
	}
	return checkAddr(a, op, "EXTEND")
}

// Offsets in EXTEND.
const (
	extendTypeOff = NodeIDLen
	extendAddrOff = extendTypeOff + addrTypeLen
	extendPortOff = extendAddrOff + ipv6Len
	extendHSOff   = extendPortOff + portLen
)

// Marshal encodes m.
func (m *Extend) Marshal() ([]byte, error) {
	if err := m.check("marshal"); err != nil {
		return nil, err
	}
	b := make([]byte, ExtendMsgLen)
	copy(b, m.NodeID[:])
	a := m.AddrPort.Addr()
	b[extendTypeOff] = byte(AddrIPv6)
	if a.Is4() {
		b[extendTypeOff] = byte(AddrIPv4)
	}
	copy(b[extendAddrOff:], a.AsSlice())
	binary.BigEndian.PutUint16(b[extendPortOff:], m.AddrPort.Port())
	copy(b[extendHSOff:], m.Handshake)
	return b, nil
}

// ParseExtend decodes an EXTEND body. Handshake is a copy.
func ParseExtend(b []byte) (Extend, error) {
	var m Extend
	if len(b) != ExtendMsgLen {
		return m, malformedf("onion: parse EXTEND: %d bytes, want %d", len(b), ExtendMsgLen)
	}
	m.NodeID = [NodeIDLen]byte(b)
	slot := b[extendAddrOff:extendPortOff]
	var a netip.Addr
	switch AddrType(b[extendTypeOff]) {
	case AddrIPv4:
		if !isZeroPad(slot[ipv4Len:]) {
			return Extend{}, malformedf("onion: parse EXTEND: nonzero bytes after the IPv4 address")
		}
		a = netip.AddrFrom4([4]byte(slot))
	case AddrIPv6:
		a = netip.AddrFrom16([16]byte(slot))
	default:
		return Extend{}, malformedf("onion: parse EXTEND: unknown address type %d", b[extendTypeOff])
	}
	m.AddrPort = netip.AddrPortFrom(a, binary.BigEndian.Uint16(b[extendPortOff:]))
	m.Handshake = bytes.Clone(b[extendHSOff:])
	if err := m.check("parse"); err != nil {
		return Extend{}, err
	}
	return m, nil
}

// Compile-time check that the EXTEND layout fills ExtendMsgLen exactly.
var _ [ExtendMsgLen - extendHSOff - HandshakeLen]struct{}
var _ [extendHSOff + HandshakeLen - ExtendMsgLen]struct{}

// Extended carries the new hop's handshake reply. SPEC.md §7.5, exactly
// ExtendMsgLen bytes so that it fragments like EXTEND:
//
//	Handshake (HandshakeLen) | zeros
type Extended struct {
	Handshake []byte
}

// Marshal encodes m.
func (m *Extended) Marshal() ([]byte, error) {
	if len(m.Handshake) != HandshakeLen {
		return nil, malformedf("onion: marshal EXTENDED: handshake is %d bytes, want %d", len(m.Handshake), HandshakeLen)
	}
	b := make([]byte, ExtendMsgLen)
	copy(b, m.Handshake)
	return b, nil
}

// ParseExtended decodes an EXTENDED body. Handshake is a copy.
func ParseExtended(b []byte) (Extended, error) {
	if len(b) != ExtendMsgLen {
		return Extended{}, malformedf("onion: parse EXTENDED: %d bytes, want %d", len(b), ExtendMsgLen)
	}
	if !isZeroPad(b[HandshakeLen:]) {
		return Extended{}, malformedf("onion: parse EXTENDED: nonzero padding")
	}
	return Extended{Handshake: bytes.Clone(b[:HandshakeLen])}, nil
}

// ParseBeginDir checks a BEGIN_DIR body, which is empty (SPEC.md §7.9):
// the stream goes to the relay's own directory cache, so there is nothing
// to name.
func ParseBeginDir(b []byte) error {
	if len(b) != 0 {
		return malformedf("onion: parse BEGIN_DIR: %d bytes, want none", len(b))
	}
	return nil
}
