// Package transfer moves shares over the network: each shard over its own
// circuit to the storage relay placement names, several at once, and back
// (shard/SPEC.md §8; DESIGN.md G7). The format is package shard's; the
// circuits are package relay/client's.
package transfer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	// DefaultWorkers is how many shards move at once: enough to keep a
	// path busy, few enough that a share does not flood its guard.
	DefaultWorkers = 8
	// shardTimeout bounds moving one shard: circuit, stream and transfer.
	shardTimeout = 60 * time.Second
	// fetchMargin is how many shards beyond k a fetch asks for at once,
	// so that one slow or missing relay does not stall a segment.
	fetchMargin = 1
	// fetchAttempts is how many fresh paths a fetch tries to one storage
	// relay: each draws another middle, and a middle that just died
	// fails the circuit before it reaches the relay.
	fetchAttempts = 4
)

// Net shares and fetches over circuits.
type Net struct {
	Client  *client.Client
	Paths   *path.Selector
	View    func() *directory.View
	Workers int
	Log     *slog.Logger
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
// middle drawn anew) and runs f on a storage client to it.
func (n *Net) withStore(ctx context.Context, relay directory.Entry, f func(*store.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, shardTimeout)
	defer cancel()
	hops, err := n.Paths.PathTo(n.View(), relay)
	if err != nil {
		return err
	}
	c, err := n.Client.Build(ctx, hops)
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.DialStore(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	return f(store.NewClient(s))
}

// Progress is told how many file bytes are done.
type Progress func(done int64)

// Share encodes the file read from r and stores every shard, each over its
// own circuit, trying alternates when a relay refuses or is gone. It
// returns the link once every shard is stored.
func (n *Net) Share(ctx context.Context, r io.Reader, size int64, p shard.Params, ttl time.Duration, progress Progress) (*shard.Link, error) {
	relays, byID, err := n.storageRelays()
	if err != nil {
		return nil, err
	}
	enc, err := shard.NewEncoder(r, size, p, rand.Reader)
	if err != nil {
		return nil, err
	}
	key := enc.PlacementKey()
	type job struct {
		shard      shard.Shard
		candidates []keys.NodeID
	}
	jobs := make(chan job, n.workers())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range n.workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				err := errors.New("no candidate relay")
				for _, id := range j.candidates {
					err = n.withStore(ctx, byID[id], func(sc *store.Client) error {
						return sc.Put(j.shard.ID, j.shard.Data, ttl)
					})
					if err == nil {
						break
					}
					n.log().Debug("shard refused, trying an alternate", "relay", id.Short(), "err", err)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("transfer: a shard could not be stored on any relay: %w", err)
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
	var done int64
	var encErr error
	for {
		seg, err := enc.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			encErr = err
			break
		}
		cands, err := shard.Place(key, seg.IDs(), relays)
		if err != nil {
			encErr = err
			break
		}
		for i, sh := range seg.Shards {
			select {
			case jobs <- job{sh, cands[i]}:
			case <-ctx.Done():
			}
		}
		if seg.Kind == shard.KindData {
			done = min(size, done+int64(p.SegmentSize))
			if progress != nil {
				progress(done)
			}
		}
	}
	close(jobs)
	wg.Wait()
	if encErr != nil {
		return nil, encErr
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return enc.Link()
}

// Fetch gets a shared file and writes it to w, verifying every shard and
// segment. It asks for k shards of a segment plus a margin in parallel,
// and for the rest only if too few of those verify.
func (n *Net) Fetch(ctx context.Context, link *shard.Link, w io.Writer, progress Progress) error {
	relays, byID, err := n.storageRelays()
	if err != nil {
		return err
	}
	dec, err := shard.NewDecoder(link, w)
	if err != nil {
		return err
	}
	key := link.PlacementKey()
	var done int64
	for {
		want, err := dec.Want()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		cands, err := fetchCandidates(key, want.IDs, relays)
		if err != nil {
			return err
		}
		shards := make([][]byte, len(want.IDs))
		first := min(len(want.IDs), want.Need+fetchMargin)
		n.fetchSome(ctx, want.IDs, cands, byID, shards, 0, first)
		err = dec.Add(shards)
		var se *shard.ShardsError
		if errors.As(err, &se) && first < len(want.IDs) {
			// Too few verified: ask for the rest and try again.
			n.fetchSome(ctx, want.IDs, cands, byID, shards, first, len(want.IDs))
			err = dec.Add(shards)
		}
		if err != nil {
			return err
		}
		if m := dec.Manifest(); want.Kind == shard.KindData && m != nil {
			done = min(m.FileSize, done+int64(m.Params.SegmentSize))
			if progress != nil {
				progress(done)
			}
		}
	}
}

// fetchCandidates orders, for each shard, the relays to ask: the relay
// placement gives it among the relays listed now, then every listed relay
// in its rendezvous order. When relays have left since the share, the
// placement of the remaining shards can shift; the full order still
// reaches the relay that took the shard, which scores high for it.
func fetchCandidates(key [32]byte, ids [][32]byte, relays []keys.NodeID) ([][]keys.NodeID, error) {
	out := make([][]keys.NodeID, len(ids))
	primaries, perr := shard.Place(key, ids, relays)
	for i, id := range ids {
		ranked, err := shard.Place(key, [][32]byte{id}, relays)
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

// fetchSome fetches shards [from, to) in parallel into shards; a shard no
// candidate has stays nil.
func (n *Net) fetchSome(ctx context.Context, ids [][32]byte, cands [][]keys.NodeID, byID map[keys.NodeID]directory.Entry, shards [][]byte, from, to int) {
	var wg sync.WaitGroup
	sema := make(chan struct{}, n.workers())
	for i := from; i < to; i++ {
		wg.Add(1)
		sema <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sema }()
			for _, id := range cands[i] {
				// A circuit through a relay that just died fails
				// before it reaches the storage relay: try fresh
				// paths before giving up on this relay.
				for attempt := 0; attempt < fetchAttempts; attempt++ {
					var data []byte
					err := n.withStore(ctx, byID[id], func(sc *store.Client) error {
						var err error
						data, err = sc.Get(ids[i])
						return err
					})
					if err == nil {
						shards[i] = data
						return
					}
					if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrCorrupt) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
}

func (n *Net) log() *slog.Logger {
	if n.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return n.Log
}
