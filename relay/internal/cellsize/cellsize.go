// Package cellsize holds the measurement that chose veil's cell size.
//
// It contains no production code: cellsize_test.go benchmarks, for cell sizes S from
// 512 B to 16 KiB, one relay's per-cell onion crypto (one AES-256-GCM Open in place),
// a real 3-relay chain over TLS 1.3 on loopback (client → r1 → r2 → r3 → sink), and the
// round-trip latency of one cell through that chain and back. RESULTS.md records the
// numbers and the conclusion.
//
// Cell layout assumed (see Overhead): a 5-byte cleartext header, then the payload of
// S-5 bytes, which is AES-256-GCM sealed per hop with a 16-byte tag; the plaintext
// carries 48 bytes of filler, a 16-byte marker and a 6-byte relay header before data.
package cellsize

// Byte counts of the fixed per-cell overhead.
const (
	HeaderLen      = 5  // cleartext link header
	TagLen         = 16 // AES-256-GCM tag
	FillerLen      = 48 // filler in the plaintext
	MarkerLen      = 16 // marker in the plaintext
	RelayHeaderLen = 6  // relay header before data

	// Overhead is what a cell of any size spends on everything but data: 91 bytes.
	Overhead = HeaderLen + TagLen + FillerLen + MarkerLen + RelayHeaderLen
)

// Sizes are the cell sizes measured.
var Sizes = []int{512, 1024, 2048, 4096, 8192, 16384}

// Useful is the number of data bytes one cell of size s carries.
func Useful(s int) int { return s - Overhead }

// Efficiency is the fraction of a cell of size s that is data.
func Efficiency(s int) float64 { return float64(Useful(s)) / float64(s) }
