package path

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"slices"

	"veil/directory"
)

const (
	// CapFactor bounds a relay's weight to this many times the median
	// bandwidth of the view's running relays. Descriptor bandwidth is
	// self-reported, so a relay that claims a huge figure would otherwise
	// attract most circuits; with the cap, a liar among n relays of
	// median bandwidth gets at most about CapFactor/(n+CapFactor) of them
	// (SPEC.md §2.4). Honest fast relays above the cap lose some share;
	// ten times the median leaves real variation intact.
	CapFactor = 10
	// maxWeight bounds every weight so that sums over directory.MaxRelays
	// relays fit in a uint64 with room to spare (2^40 B/s is 1 TB/s).
	maxWeight = 1 << 40
	// UnmeasuredBandwidth is what a relay that no majority of seeds has
	// measured counts for, in bytes a second, if it claims more: Tor's
	// 20 KB/s for unmeasured relays. A claim costs nothing to inflate, so
	// until seeds have timed a relay it gets a small share
	// (directory/SPEC.md §5.6).
	UnmeasuredBandwidth = 20 << 10
)

// bandwidth is what a relay counts for before the cap: the seeds' median
// measurement (KiB/s), never above the relay's own claim, or the small
// UnmeasuredBandwidth when it has not been measured.
func bandwidth(e directory.Entry) uint64 {
	claimed := e.Descriptor.Bandwidth
	if e.Weight == 0 {
		return min(claimed, UnmeasuredBandwidth)
	}
	return min(uint64(e.Weight)<<10, claimed)
}

// weightCap returns the largest weight a relay in view may have: CapFactor
// times the median bandwidth of its entries (at least 1). With measured
// weights the cap matters less, but a relay whose seeds were fooled
// still cannot take more than CapFactor times the median.
func weightCap(entries []directory.Entry) uint64 {
	bws := make([]uint64, 0, len(entries))
	for _, e := range entries {
		bws = append(bws, bandwidth(e))
	}
	if len(bws) == 0 {
		return 1
	}
	slices.Sort(bws)
	median := min(bws[len(bws)/2], maxWeight/CapFactor)
	return max(median*CapFactor, 1)
}

// weight is a relay's share in a draw: its bandwidth clamped to [1, limit],
// so a relay that reports nothing is still chosen, rarely.
func weight(e directory.Entry, limit uint64) uint64 {
	return min(max(bandwidth(e), 1), limit)
}

// pick draws one of cands for position p with probability proportional to
// its weight there (position.go). If every candidate weighs 0 at p (all of
// a kind kept for another position), the draw falls back to bandwidth
// alone: a path is still better than none. cands must not be empty.
func pick(rand io.Reader, cands []directory.Entry, dw drawWeights, p position) (directory.Entry, error) {
	w := func(e directory.Entry) uint64 { return dw.at(e, p) }
	var total uint64
	for _, e := range cands {
		total += w(e)
	}
	if total == 0 {
		w = func(e directory.Entry) uint64 { return weight(e, dw.limit) }
		for _, e := range cands {
			total += w(e)
		}
	}
	r, err := uniform(rand, total)
	if err != nil {
		return directory.Entry{}, err
	}
	for _, e := range cands {
		x := w(e)
		if r < x {
			return e, nil
		}
		r -= x
	}
	panic("path: internal error: weighted draw past the total")
}

// uniform returns a uniformly random integer in [0, n) read from rand,
// rejecting draws from the incomplete last block of 2^64 so that no value
// is favoured. n must be positive.
func uniform(rand io.Reader, n uint64) (uint64, error) {
	if n == 0 {
		panic("path: internal error: uniform(0)")
	}
	// Values at or above limit would make r % n biased.
	limit := -n % n // 2^64 mod n
	var b [8]byte
	for {
		if _, err := io.ReadFull(rand, b[:]); err != nil {
			return 0, fmt.Errorf("random source: %w", err)
		}
		v := binary.LittleEndian.Uint64(b[:])
		hi, lo := bits.Mul64(v, n)
		if lo >= limit {
			return hi, nil
		}
	}
}
