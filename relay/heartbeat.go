package relay

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"veil/onion"
)

// heartbeatEvery is how often a relay says at info how it is doing: Tor's
// HeartbeatPeriod, so an operator who reads the log once a day sees four.
const heartbeatEvery = 6 * time.Hour

// heartbeat logs a heartbeat line every `every` until ctx ends.
func (e *engine) heartbeat(ctx context.Context, started time.Time, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.log.Info("heartbeat", e.heartbeatAttrs(started)...)
	}
}

// heartbeatAttrs are the heartbeat's figures: uptime, circuits and links
// now and since start, bytes carried (whole cells), exit streams, and the
// relay's flags in the consensus it mirrors, when it is a directory cache.
// Nothing names a peer, a client or a destination.
func (e *engine) heartbeatAttrs(started time.Time) []any {
	t := e.mem.traffic()
	circuits := map[*relayCircuit]bool{}
	for _, c := range e.circs.all() {
		circuits[c] = true
	}
	flags := "unknown (not a directory cache)"
	if e.r.dirCache != nil {
		flags = "not in the consensus"
		if v := e.r.dirCache.View(); v != nil {
			if entry, ok := v.ByID(e.r.ID()); ok {
				flags = strings.Join(entry.Flags.Names(), " ")
			}
		}
	}
	return []any{
		slog.Duration("uptime", e.r.now().Sub(started).Round(time.Second)),
		slog.Int("circuits", len(circuits)),
		slog.Uint64("circuits_created", e.stats.created.Load()),
		slog.Int("links", t.links),
		slog.Uint64("mb_in", t.cellsIn*onion.CellSize>>20),
		slog.Uint64("mb_out", t.cellsOut*onion.CellSize>>20),
		slog.Uint64("exit_streams", e.stats.begins.Load()),
		slog.String("flags", flags),
	}
}
