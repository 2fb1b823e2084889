package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"veil/conf/durable"
)

// The shard file (one per shard, dir/xx/<64 hex digits of the ID>, where xx
// is the ID's first byte in hex). Big-endian:
//
//	Magic (8, "VEILSHRD") | Version (1, 1) | Reserved (3, zero) |
//	ID (32) | Expiry (8, Unix nanoseconds, signed) | Length (4) |
//	SHA-256 (32, of Content) | Content (Length)
//
// The ID in the header catches a file copied or renamed under the wrong
// name; the hash catches bit rot and torn writes that escaped the atomic
// rename (G10). Open reads headers only; Get checks the hash on every read.
const (
	fileMagic   = "VEILSHRD"
	magicLen    = 8 // len(fileMagic), untyped
	fileVersion = 1 // the only version; a new one gets a changelog line here

	offVersion  = magicLen
	offReserved = offVersion + 1
	offID       = offReserved + 3
	offExpiry   = offID + IDLen
	offLength   = offExpiry + 8
	offSum      = offLength + 4

	// HeaderLen is the size of a shard file's header. It counts against
	// the quota with the content.
	HeaderLen = offSum + sha256.Size // 88
)

// Names in the store directory.
const (
	quarantineDir = "quarantine"
	tempInfix     = ".tmp-" // temporary files: "." + hex ID + ".tmp-" + random
)

// errDamaged marks a shard file that cannot be trusted. Get reports it as
// ErrCorrupt; Open quarantines the file.
var errDamaged = errors.New("store: damaged shard file")

func damagedf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errDamaged}, args...)...)
}

// fileHeader is a parsed shard file header.
type fileHeader struct {
	id     [IDLen]byte
	expiry int64 // Unix nanoseconds
	length uint32
	sum    [sha256.Size]byte
}

var (
	_ [magicLen - len(fileMagic)]struct{} // magicLen is len(fileMagic)
	_ [len(fileMagic) - magicLen]struct{}
)

func (h *fileHeader) marshal() []byte {
	b := make([]byte, HeaderLen)
	copy(b, fileMagic)
	b[offVersion] = fileVersion
	copy(b[offID:], h.id[:])
	binary.BigEndian.PutUint64(b[offExpiry:], uint64(h.expiry))
	binary.BigEndian.PutUint32(b[offLength:], h.length)
	copy(b[offSum:], h.sum[:])
	return b
}

// parseHeader decodes the first HeaderLen bytes of a shard file. It checks
// the layout only, not the content.
func parseHeader(b []byte) (fileHeader, error) {
	var h fileHeader
	if len(b) < HeaderLen {
		return h, damagedf("header is %d bytes, want %d", len(b), HeaderLen)
	}
	if string(b[:offVersion]) != fileMagic {
		return h, damagedf("bad magic %q", b[:offVersion])
	}
	if b[offVersion] != fileVersion {
		return h, damagedf("unknown version %d", b[offVersion])
	}
	if b[offReserved] != 0 || b[offReserved+1] != 0 || b[offReserved+2] != 0 {
		return h, damagedf("reserved bytes set")
	}
	copy(h.id[:], b[offID:])
	h.expiry = int64(binary.BigEndian.Uint64(b[offExpiry:]))
	h.length = binary.BigEndian.Uint32(b[offLength:])
	copy(h.sum[:], b[offSum:])
	return h, nil
}

// marshalShardFile returns the whole file for content data.
func marshalShardFile(h *fileHeader, data []byte) []byte {
	b := make([]byte, 0, HeaderLen+len(data))
	b = append(b, h.marshal()...)
	return append(b, data...)
}

// parseShardFile decodes a whole shard file and verifies its length and
// hash. The content aliases b.
func parseShardFile(b []byte) (fileHeader, []byte, error) {
	h, err := parseHeader(b)
	if err != nil {
		return h, nil, err
	}
	if want := int64(HeaderLen) + int64(h.length); int64(len(b)) != want {
		return h, nil, damagedf("file is %d bytes, header says %d", len(b), want)
	}
	data := b[HeaderLen:]
	if sum := sha256.Sum256(data); !bytes.Equal(sum[:], h.sum[:]) {
		return h, nil, damagedf("content hash mismatch")
	}
	return h, data, nil
}

// shardPath is where shard id lives under dir.
func shardPath(dir string, id *[IDLen]byte) string {
	name := hex.EncodeToString(id[:])
	return filepath.Join(dir, name[:2], name)
}

// parseShardName returns the ID a file name in fan-out directory sub
// stands for, or false if the name is not a shard file's.
func parseShardName(sub, name string) ([IDLen]byte, bool) {
	var id [IDLen]byte
	if len(name) != 2*IDLen || name[:2] != sub || strings.ToLower(name) != name {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(name)); err != nil {
		return id, false
	}
	return id, true
}

func isTempName(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tempInfix)
}

// writeFileAtomic replaces path with data, mode 0600 (conf/durable). A
// crash leaves the old file or the new one, never a mix; a leftover
// temporary file (".<name>.tmp-*") is removed by Open.
func writeFileAtomic(path string, data []byte) error {
	return durable.WriteFile(path, data, 0o600)
}

// mkdirDurable creates directory dir with mode 0700 if it is missing, and
// fsyncs its parent so the new entry lasts.
func mkdirDurable(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil { // umask does not apply
		return err
	}
	return durable.SyncDir(filepath.Dir(dir))
}
