package gossip

// Wire formats of this package: the descriptor fetch messages (SPEC.md §2)
// and the push/pull backstop state (SPEC.md §3). Every number lives here.
// Integers are big-endian. Parsers check every length before touching bytes
// and refuse trailing bytes, so each valid message has exactly one encoding.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

const (
	// MaxPointerSize is the largest pointer: memberlist's limit on node
	// metadata (memberlist.MetaMaxSize), beyond which memberlist panics.
	MaxPointerSize = memberlist.MetaMaxSize

	// MaxDescriptorSize is the largest descriptor this package carries:
	// above the directory's largest (17828 bytes, checked in
	// directory/member) with room for a later layout.
	MaxDescriptorSize = 24 << 10

	// MaxNameSize is the longest memberlist node name: it travels with a
	// one-byte length in fetch requests.
	MaxNameSize = 255

	// DigestSize is the size of the descriptor digest a pointer names.
	DigestSize = 32
)

// Fetch message types (SPEC.md §2). Append-only: never renumber or reuse a
// value; a new message gets the next free number.
const (
	msgRequest  byte = 1 // request  = 1 | digest(32) | nameLen(1) | name
	msgResponse byte = 2 // response = 2 | digest(32) | len(4) | descriptor(len)
	msgNotFound byte = 3 // notFound = 3 | digest(32)
	msgLeaving  byte = 4 // leaving  = 4 | digest(32) | nameLen(1) | name
)

// Sizes of the fetch messages.
const (
	requestFixedSize   = 1 + DigestSize + 1 // type, digest, name length (request and leaving)
	responseHeaderSize = 1 + DigestSize + 4 // type, digest, descriptor length
	notFoundSize       = 1 + DigestSize

	// maxMessageSize bounds every fetch message: a response with the
	// largest descriptor. Anything longer is refused unread.
	maxMessageSize = responseHeaderSize + MaxDescriptorSize
)

// Push/pull backstop state (SPEC.md §3).
const (
	stateVersion byte = 1 // append-only, see SPEC.md §3 changelog

	stateHeaderSize = 1 + 2 // version, entry count
	entryFixedSize  = 1 + 2 // name length, pointer length

	// maxStateBytes bounds the state one node sends per push/pull: about
	// 240 entries of the directory's largest pointer. Larger networks get
	// a rotating subset each exchange; the state is only a backstop to the
	// metadata memberlist already exchanges.
	maxStateBytes = 64 << 10
)

var (
	errShort    = errors.New("gossip: message truncated")
	errTrailing = errors.New("gossip: trailing bytes after message")
)

// A message is one fetch message. Which fields are set depends on Type.
type message struct {
	Type       byte
	Digest     [DigestSize]byte
	Name       string // msgRequest: the requester's memberlist node name; msgLeaving: the leaving node's; 1..MaxNameSize bytes
	Descriptor []byte // msgResponse: 1..MaxDescriptorSize bytes
}

// marshal encodes m, checking its fields against the limits above.
func (m *message) marshal() ([]byte, error) {
	switch m.Type {
	case msgRequest, msgLeaving:
		if len(m.Name) == 0 || len(m.Name) > MaxNameSize {
			return nil, fmt.Errorf("gossip: name is %d bytes, want 1..%d", len(m.Name), MaxNameSize)
		}
		b := make([]byte, 0, requestFixedSize+len(m.Name))
		b = append(b, m.Type)
		b = append(b, m.Digest[:]...)
		b = append(b, byte(len(m.Name)))
		return append(b, m.Name...), nil
	case msgResponse:
		if len(m.Descriptor) == 0 || len(m.Descriptor) > MaxDescriptorSize {
			return nil, fmt.Errorf("gossip: descriptor is %d bytes, want 1..%d", len(m.Descriptor), MaxDescriptorSize)
		}
		b := make([]byte, 0, responseHeaderSize+len(m.Descriptor))
		b = append(b, msgResponse)
		b = append(b, m.Digest[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.Descriptor)))
		return append(b, m.Descriptor...), nil
	case msgNotFound:
		b := make([]byte, 0, notFoundSize)
		b = append(b, msgNotFound)
		return append(b, m.Digest[:]...), nil
	}
	return nil, fmt.Errorf("gossip: unknown message type %d", m.Type)
}

// parseMessage decodes one fetch message. The result does not alias b:
// memberlist may reuse the buffer after NotifyMsg returns.
func parseMessage(b []byte) (message, error) {
	var m message
	if len(b) > maxMessageSize {
		return m, fmt.Errorf("gossip: message is %d bytes, limit %d", len(b), maxMessageSize)
	}
	if len(b) < 1+DigestSize {
		return m, errShort
	}
	m.Type = b[0]
	copy(m.Digest[:], b[1:1+DigestSize])
	rest := b[1+DigestSize:]
	switch m.Type {
	case msgRequest, msgLeaving:
		if len(rest) < 1 {
			return m, errShort
		}
		n := int(rest[0])
		rest = rest[1:]
		if n == 0 {
			return m, errors.New("gossip: message with empty name")
		}
		if len(rest) < n {
			return m, errShort
		}
		if len(rest) > n {
			return m, errTrailing
		}
		m.Name = string(rest)
	case msgResponse:
		if len(rest) < 4 {
			return m, errShort
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if n == 0 || n > MaxDescriptorSize {
			return m, fmt.Errorf("gossip: descriptor length %d, want 1..%d", n, MaxDescriptorSize)
		}
		if uint32(len(rest)) < n {
			return m, errShort
		}
		if uint32(len(rest)) > n {
			return m, errTrailing
		}
		m.Descriptor = append([]byte(nil), rest...)
	case msgNotFound:
		if len(rest) != 0 {
			return m, errTrailing
		}
	default:
		return m, fmt.Errorf("gossip: unknown message type %d", m.Type)
	}
	return m, nil
}

// A stateEntry is one (node name, pointer) pair of the push/pull state.
type stateEntry struct {
	Name    string // 1..MaxNameSize bytes
	Pointer []byte // 1..MaxPointerSize bytes
}

func (e stateEntry) size() int { return entryFixedSize + len(e.Name) + len(e.Pointer) }

func (e stateEntry) valid() bool {
	return len(e.Name) > 0 && len(e.Name) <= MaxNameSize &&
		len(e.Pointer) > 0 && len(e.Pointer) <= MaxPointerSize
}

// marshalState encodes as many valid entries as fit in maxStateBytes, in
// order, skipping the rest.
func marshalState(entries []stateEntry) []byte {
	b := make([]byte, stateHeaderSize, 1024)
	b[0] = stateVersion
	count := 0
	for _, e := range entries {
		if !e.valid() || len(b)+e.size() > maxStateBytes || count == 0xffff {
			continue
		}
		b = append(b, byte(len(e.Name)))
		b = append(b, e.Name...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.Pointer)))
		b = append(b, e.Pointer...)
		count++
	}
	binary.BigEndian.PutUint16(b[1:], uint16(count))
	return b
}

// parseState decodes a push/pull state. Entries alias b.
func parseState(b []byte) ([]stateEntry, error) {
	if len(b) > maxStateBytes {
		return nil, fmt.Errorf("gossip: state is %d bytes, limit %d", len(b), maxStateBytes)
	}
	if len(b) < stateHeaderSize {
		return nil, errShort
	}
	if b[0] != stateVersion {
		return nil, fmt.Errorf("gossip: state version %d, want %d", b[0], stateVersion)
	}
	count := int(binary.BigEndian.Uint16(b[1:]))
	b = b[stateHeaderSize:]
	// Each entry takes at least entryFixedSize+2 bytes, so count is
	// bounded by the (bounded) input before anything is allocated.
	if count > len(b)/(entryFixedSize+2) {
		return nil, errShort
	}
	entries := make([]stateEntry, 0, count)
	for range count {
		if len(b) < 1 {
			return nil, errShort
		}
		n := int(b[0])
		b = b[1:]
		if len(b) < n+2 {
			return nil, errShort
		}
		name := b[:n]
		p := int(binary.BigEndian.Uint16(b[n:]))
		b = b[n+2:]
		if len(b) < p {
			return nil, errShort
		}
		e := stateEntry{Name: string(name), Pointer: b[:p:p]}
		b = b[p:]
		if !e.valid() {
			return nil, fmt.Errorf("gossip: state entry with name of %d bytes and pointer of %d bytes", n, p)
		}
		entries = append(entries, e)
	}
	if len(b) != 0 {
		return nil, errTrailing
	}
	return entries, nil
}
