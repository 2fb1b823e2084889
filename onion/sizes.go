package onion

// Every size on the wire is a named constant here; SPEC.md §2 explains each
// choice. Changing one is a protocol change: bump ProtocolVersion, update
// SPEC.md and regenerate testdata/onion in the same commit.

// ProtocolVersion is the version of SPEC.md this package speaks; its
// changelog is SPEC.md §1.
const ProtocolVersion = 2

const (
	// CellSize is the size of every cell on every link (G5). SPEC.md §2.1
	// gives the measurements behind the choice.
	CellSize = 4096

	// CircIDLen and cellCmdLen make up the cleartext link header.
	CircIDLen     = 4
	cellCmdLen    = 1
	CellHeaderLen = CircIDLen + cellCmdLen

	// CellPayloadLen is what follows the link header in every cell.
	CellPayloadLen = CellSize - CellHeaderLen

	// MaxHops bounds the length of a circuit. The layered crypto reserves
	// one 16-byte filler block per hop after the first (SPEC.md §5), so a
	// longer circuit cannot be expressed at all.
	MaxHops = 4

	// MaxRelayEarly is how many RELAY_EARLY cells a relay passes per
	// circuit, and how many a client sends: its first MaxRelayEarly relay
	// cells, whatever they carry (SPEC.md §7.6), as Tor's clients do, so
	// that the command tells a relay little about where it sits.
	MaxRelayEarly = 8

	// TagLen is the full GCM tag carried by every relay cell at every layer.
	// No truncated digests (G3).
	TagLen = 16

	// fillerLen is the region at the front of a relay cell's plaintext that
	// absorbs the block each forwarding hop prepends (SPEC.md §5.2).
	fillerLen = (MaxHops - 1) * 16

	// RecognizedLen is the per-hop marker that tells a hop a cell is its own.
	RecognizedLen = 16

	// RelayPlainLen is the plaintext a relay cell's layers protect.
	RelayPlainLen = CellPayloadLen - TagLen

	// RelayBodyLen is the part of the plaintext that carries a relay cell
	// header and data (SPEC.md §6), after the filler region and the marker.
	RelayBodyLen = RelayPlainLen - fillerLen - RecognizedLen

	// RelayHeaderLen is cmd(1) | flags(1) | stream ID(2) | length(2).
	RelayHeaderLen = 6

	// MaxRelayData is how many message bytes one relay cell carries.
	MaxRelayData = RelayBodyLen - RelayHeaderLen

	// MaxRelayMessageLen bounds a reassembled relay message (G9): the
	// largest message is a shard transfer chunk; nothing needs more.
	MaxRelayMessageLen = 64 << 10
)

// Handshake sizes (SPEC.md §4). Both directions use the same length so a
// fragmented handshake takes as many cells each way.
const (
	x25519Len = 32
	NodeIDLen = 32

	// HandshakeLen is the length of both the request and the reply.
	HandshakeLen = 2 + NodeIDLen + x25519Len + x25519Len + mlkemPublicKeyLen

	mlkemPublicKeyLen  = 1184
	mlkemCiphertextLen = 1088
)
