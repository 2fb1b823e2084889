// Package transfer moves shares over the network: each shard over its own
// circuit to the storage relay placement names, several at once, and back
// (shard/SPEC.md §8; DESIGN.md G7). The format is package shard's; the
// circuits are package relay/client's.
package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"veil/directory"
	"veil/onion/keys"
	"veil/relay/client"
	"veil/relay/path"
	"veil/shard"
	"veil/shard/store"
)

const (
	// DefaultWorkers is how many shards move at once: enough that circuit
	// builds and relays' disk writes overlap (on the 6-relay testnet a
	// 100 MB share took 2.1 s with 8 and 1.7–2.0 s with 12 or 16), few
	// enough that a share does not flood its guard.
	DefaultWorkers = 16
	// shardTimeout bounds moving one shard: circuit, stream and transfer.
	shardTimeout = 60 * time.Second
	// fetchMargin is how many shards beyond k a fetch asks for at once,
	// so that one slow or missing relay does not stall a segment.
	fetchMargin = 1
	// fetchAttempts is how many fresh paths a fetch tries to one storage
	// relay: each draws a middle among the client's vanguards afresh,
	// and a middle that just died fails the circuit before it reaches
	// the relay.
	fetchAttempts = 4
	// fetchAhead is how many data segments a fetch gathers ahead of the
	// one it decodes: enough to keep circuits busy while one segment's
	// shards cross the network, few enough to bound memory (each holds
	// k+1 shards, 1.4 MB at (3, 2)).
	fetchAhead = 3
	// uploadJitter bounds the random pause before each shard's upload:
	// about one circuit build, so it costs little throughput with
	// DefaultWorkers uploads at once.
	uploadJitter = 3 * time.Millisecond
	// unstableWeight is the public placement weight of a relay without
	// the Stable flag (SPEC.md §8): it has not stayed up as long, so a
	// shard on it is likelier to be gone at fetch time.
	unstableWeight = 0.5
)

// sleepCtx waits d or until ctx ends; it reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Net shares and fetches over circuits.
type Net struct {
	Client  *client.Client
	Paths   *path.Selector
	View    func() *directory.View
	Workers int
	Log     *slog.Logger
	// Reliability is the client's record of storage relays (SPEC.md
	// §8.3): a share and a repair weigh relays by it and add what they
	// measure. nil: every relay weighs the same and nothing is kept.
	Reliability *Reliability

	// random makes file keys; nil means crypto/rand. Tests fix it to know
	// a share's shard IDs before it is made.
	random io.Reader
}

func (n *Net) workers() int {
	if n.Workers > 0 {
		return n.Workers
	}
	return DefaultWorkers
}

// storageRelays lists the relays shards may be placed on, by node ID.
func (n *Net) storageRelays() ([]keys.NodeID, map[keys.NodeID]directory.Entry, error) {
	v := n.View()
	if v == nil {
		return nil, nil, errors.New("transfer: no directory view yet")
	}
	byID := map[keys.NodeID]directory.Entry{}
	var ids []keys.NodeID
	for _, e := range v.Usable(time.Now()) {
		if e.Flags&(directory.FlagStorage|directory.FlagRunning|directory.FlagValid) == directory.FlagStorage|directory.FlagRunning|directory.FlagValid {
			id := e.Descriptor.NodeID()
			byID[id] = e
			ids = append(ids, id)
		}
	}
	return ids, byID, nil
}

// withStore builds a fresh circuit whose last hop is relay (guard fixed,
// middle one of the client's vanguards, relay/path/SPEC.md §3) and runs f
// on a storage client to it. The stream is counted for path bias.
func (n *Net) withStore(ctx context.Context, relay directory.Entry, f func(*store.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, shardTimeout)
	defer cancel()
	hops, err := n.Paths.PathTo(n.View(), relay)
	if err != nil {
		return err
	}
	c, err := n.Client.BuildTo(ctx, hops)
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := n.Client.DialStore(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	return f(store.NewClient(s))
}

// Progress is told how many of the file's bytes are done, and of how many
// (0 until a fetch has read the manifest).
type Progress func(done, total int64)

// Fetch gets a shared file and writes it to w, verifying every shard and
// segment: FetchTo with a w known from the start.
func (n *Net) Fetch(ctx context.Context, link *shard.Link, w io.Writer, progress Progress) error {
	return n.FetchTo(ctx, link, func(*shard.Manifest) (io.Writer, error) { return w, nil }, progress)
}

// Opener is given a share's verified manifest before any of its bytes are
// fetched, and says where to write them; an error ends the fetch there.
// The CLI learns the file's name and kind from it (shard/SPEC.md §5.1).
type Opener func(*shard.Manifest) (io.Writer, error)

// FetchTo gets a shared file, verifying every shard and segment, and
// writes it where open says once the manifest is in. It asks for k shards
// of a segment plus a margin in parallel and goes on with the first k to
// arrive, cancelling the slowest; a request that fails or lags its peers
// has another shard asked for beside it at once (hedge.go), and relays
// that failed are asked last. It asks for the rest only if too few of the
// first k verify. progress is told the file's size once the manifest is
// in.
func (n *Net) FetchTo(ctx context.Context, link *shard.Link, open Opener, progress Progress) error {
	out := &openedWriter{}
	onManifest := func(m *shard.Manifest) error {
		w, err := open(m)
		out.w = w
		return err
	}
	return n.walk(ctx, link, out, progress, fetchAhead, onManifest, func(want shard.Want, s *segmentFetch) error {
		err := s.dec.Add(s.get(want.Need+fetchMargin, want.Need))
		var se *shard.ShardsError
		if errors.As(err, &se) && s.pending() > 0 {
			// Too few verified: ask for every other shard and try again.
			err = s.dec.Add(s.get(len(want.IDs), 0))
		}
		return err
	})
}

// openedWriter writes to what an Opener returned; the decoder writes
// only data segments, which come after the manifest.
type openedWriter struct{ w io.Writer }

func (o *openedWriter) Write(b []byte) (int, error) { return o.w.Write(b) }

// getShard asks the candidates in order for one shard and returns it with
// the relay that had it; nil if none had it (or ctx ended), and then the
// path.ErrNoGuard error if some candidate could not be asked at all. It
// calls failed for each attempt that failed on the way to a relay or at it
// (not for a relay that answered that it has no such shard), and absent
// for each relay that answered it has none (or had a damaged one, which
// it has now dropped).
func (n *Net) getShard(ctx context.Context, id [32]byte, cands []keys.NodeID, byID map[keys.NodeID]directory.Entry, failed, absent func(keys.NodeID)) ([]byte, keys.NodeID, error) {
	var noGuard error
	for _, relay := range cands {
		// A circuit through a relay that just died fails before it
		// reaches the storage relay: try fresh paths before giving up
		// on this relay.
		for attempt := 0; attempt < fetchAttempts && ctx.Err() == nil; attempt++ {
			var data []byte
			err := n.withStore(ctx, byID[relay], func(sc *store.Client) error {
				var err error
				data, err = sc.Get(id)
				return err
			})
			if err == nil {
				return data, relay, nil
			}
			if errors.Is(err, path.ErrNoGuard) {
				// No fresh path helps: no kept guard can start a
				// circuit to this relay (typically it is the one kept
				// guard still up) and no new guard may be taken
				// (relay/path SPEC.md §1.1).
				noGuard = err
				break
			}
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrCorrupt) {
				absent(relay)
				break
			}
			if ctx.Err() == nil {
				n.log().Debug("transfer: shard request failed", "relay", byID[relay].Descriptor.Nickname, "attempt", attempt, "err", err)
				failed(relay)
			}
		}
	}
	return nil, keys.NodeID{}, noGuard
}

// walk runs a Decoder over the share, writing the file to w, and calls
// segment for the head and each segment in order; segment gathers shards
// with get and passes them to the decoder. onManifest, if not nil, is
// called once the manifest is verified, before any data segment is asked
// for; its error ends the walk.
//
// With ahead > 0, the next ahead data segments are fetched (k plus the
// margin, the first k kept) while the current one is decoded and
// written, so that circuit builds and relays' disks overlap instead of
// adding up segment after segment.
func (n *Net) walk(ctx context.Context, link *shard.Link, w io.Writer, progress Progress, ahead int, onManifest func(*shard.Manifest) error, segment func(shard.Want, *segmentFetch) error) error {
	relays, byID, err := n.storageRelays()
	if err != nil {
		return err
	}
	dec, err := shard.NewDecoder(link, w)
	if err != nil {
		return err
	}
	key := link.PlacementKey()
	public := publicWeights(byID)
	stats := newFetchStats()
	ctx, cancel := context.WithCancel(ctx)
	var prefetches sync.WaitGroup
	defer func() {
		cancel()
		prefetches.Wait()
		stats.mu.Lock()
		stats.refused = dec.Refused()
		stats.mu.Unlock()
		stats.log(n.log(), byID)
	}()
	newFetch := func(ids [][32]byte) (*segmentFetch, error) {
		cands, err := fetchCandidates(key, ids, relays, public)
		if err != nil {
			return nil, err
		}
		s := newSegmentFetch(ctx, n.workers(), len(ids), stats)
		s.dec, s.ids, s.cands = dec, ids, cands
		s.dial = func(ctx context.Context, relay keys.NodeID, f func(*store.Client) error) error {
			return n.withStore(ctx, byID[relay], f)
		}
		s.one = func(ctx context.Context, i int, trouble func()) ([]byte, keys.NodeID) {
			failed := func(relay keys.NodeID) {
				stats.fail(relay)
				trouble()
			}
			absent := func(relay keys.NodeID) { s.noteAbsent(i, relay) }
			data, from, err := n.getShard(ctx, s.ids[i], s.cands[i], byID, failed, absent)
			if err != nil {
				s.noteUnreachable(err)
			}
			return data, from
		}
		return s, nil
	}
	started := map[uint64]*segmentFetch{}
	var done int64
	for {
		want, err := dec.Want()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		s := started[want.Index]
		delete(started, want.Index)
		if want.Kind != shard.KindData || s == nil {
			if s, err = newFetch(want.IDs); err != nil {
				return err
			}
		}
		if m := dec.Manifest(); want.Kind == shard.KindData && m != nil {
			k := m.Params.K
			for j := want.Index + 1; j <= want.Index+uint64(ahead) && j < uint64(m.Segments()); j++ {
				if started[j] != nil {
					continue
				}
				f, err := newFetch(link.ShardIDs(shard.KindData, j))
				if err != nil {
					return err
				}
				started[j] = f
				f.prefetch(&prefetches, k+fetchMargin, k)
			}
		}
		if err := segment(want, s); err != nil {
			if u := s.unreachableErr(); u != nil {
				return fmt.Errorf("%w; %w", err, u)
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if m := dec.Manifest(); m != nil && want.Kind == shard.KindManifest && onManifest != nil {
			// The manifest's last segment is in, no data asked for yet.
			if err := onManifest(m); err != nil {
				return err
			}
		}
		if m := dec.Manifest(); m != nil && progress != nil {
			if want.Kind == shard.KindData {
				done = min(m.FileSize, done+int64(m.Params.SegmentSize))
			}
			progress(done, m.FileSize)
		}
	}
}

// fetchCandidates orders, for each shard, the relays to ask: the relay
// placement gives it among the relays listed now, then every listed relay
// in its rendezvous order, both weighted by the consensus alone (public),
// as every uploader weighs them before its own record (SPEC.md §8). When
// relays have left since the share, or an uploader passed over a relay it
// had seen lose shards, the placement of the remaining shards can shift;
// the full order still reaches the relay that took the shard, which
// ranks high for it.
func fetchCandidates(key [32]byte, ids [][32]byte, relays []keys.NodeID, public func(keys.NodeID) float64) ([][]keys.NodeID, error) {
	out := make([][]keys.NodeID, len(ids))
	primaries, perr := shard.PlaceWeighted(key, ids, relays, public)
	for i, id := range ids {
		ranked, err := shard.PlaceWeighted(key, [][32]byte{id}, relays, public)
		if err != nil {
			return nil, err
		}
		if perr == nil {
			out[i] = append(out[i], primaries[i][0])
		}
		for _, r := range ranked[0] {
			if len(out[i]) == 0 || r != out[i][0] {
				out[i] = append(out[i], r)
			}
		}
	}
	return out, nil
}

func (n *Net) log() *slog.Logger {
	if n.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return n.Log
}

// publicWeights is each storage relay's weight from the consensus alone,
// the same for every client (SPEC.md §8): 1 for a Stable relay, half for
// one that is not (it is more likely gone when the file is fetched),
// times its declared storage capacity over the median one, capped at 1. A
// relay's claim can only lower its weight, never raise it above a typical
// relay's, so claiming a huge disk attracts no extra shards.
func publicWeights(byID map[keys.NodeID]directory.Entry) func(keys.NodeID) float64 {
	caps := make([]uint64, 0, len(byID))
	for _, e := range byID {
		caps = append(caps, e.Descriptor.StorageCapacity)
	}
	slices.Sort(caps)
	median := uint64(0)
	if len(caps) > 0 {
		median = caps[len(caps)/2]
	}
	return func(r keys.NodeID) float64 {
		e, ok := byID[r]
		if !ok {
			return 1
		}
		w := 1.0
		if e.Flags&directory.FlagStable == 0 {
			w = unstableWeight
		}
		if median > 0 && e.Descriptor.StorageCapacity < median {
			w *= float64(e.Descriptor.StorageCapacity) / float64(median)
		}
		return w
	}
}
