package relay

import (
	"fmt"
	"log/slog"
	"net/netip"

	"veil/conf"
	"veil/directory/dircache"
	"veil/directory/dirclient"
	"veil/onion"
)

// newDirCache returns the relay's directory cache for the seeds its config
// pins (dir_cache_seed), or nil when it pins none: such a relay answers
// BEGIN_DIR with END NOROUTE and clients ask the seeds.
func newDirCache(cfg *conf.Relay, log *slog.Logger) (*dircache.Cache, error) {
	if len(cfg.DirCacheSeeds) == 0 {
		return nil, nil
	}
	seeds, err := dirclient.SeedsFromConfig(cfg.DirCacheSeeds)
	if err != nil {
		return nil, fmt.Errorf("relay: dir_cache_seed: %w", err)
	}
	c, err := dircache.New(dircache.Options{Seeds: seeds, DataDir: cfg.DataDir,
		MinRefresh: cfg.DirCacheRefresh.D(), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	return c, nil
}

// beginDir opens a BEGIN_DIR stream (onion/SPEC.md §7.9) to the relay's
// directory cache and serves it in a goroutine the relay waits for, or
// ends it at once: NOROUTE with no cache, RESOURCELIMIT when the cache
// serves as many streams as it may (dircache.MaxStreams, or
// MaxStreamsPerCircuit on this circuit).
func (e *engine) beginDir(circ *relayCircuit, sid uint16) {
	cache := e.r.dirCache
	if cache == nil {
		e.endStream(circ, sid, onion.EndNoRoute)
		return
	}
	release, ok := cache.Acquire(circ)
	if !ok {
		e.endStream(circ, sid, onion.EndResourceLimit)
		return
	}
	e.goTracked(func() {
		defer release()
		s, ok := e.openStream(circ, sid, netip.Addr{})
		if !ok {
			return
		}
		e.stats.streamOpened(streamDir)
		// abort unblocks the stream's Read or Write when the client idles
		// or the relay stops; after it, CloseWith below does nothing.
		err := cache.ServeStream(e.ctx, s, func() { s.CloseWith(onion.EndTimeout) })
		if err != nil {
			e.log.Debug("directory stream ended", "err", err)
		}
		s.CloseWith(onion.EndDone)
	})
}
