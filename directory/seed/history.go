package seed

import (
	"math"
	"net/netip"
	"slices"
	"time"

	"veil/directory"
	"veil/onion/keys"
)

// A seed's memory of each relay (directory/SPEC.md §5.3.1), kept by node ID
// (never by gossip name, which a stranger can take) and saved to disk, so
// that a restart changes no flags. It weighs uptime the way Tor's directory
// authorities do (rephist.c): weighted fractional uptime (WFU, the share of
// the watched time a relay was up) for Guard, and weighted mean time
// between failures (MTBF) for Stable, with old time counting for less.

const (
	// decayAlpha and decayEvery are Tor's STABILITY_ALPHA and
	// STABILITY_INTERVAL: every weight shrinks by 5% each 12 hours, so
	// what happened a week ago counts half as much as what happened
	// today, and a month ago a twentieth. The decay is applied
	// continuously rather than in 12-hour steps.
	decayAlpha = 0.95
	decayEvery = 12 * time.Hour
	// maxHistory bounds the table (G9). Only relays the seed has listed
	// Running (alive in gossip and answering on their OR port with their
	// identity) get a record, and a consensus lists at most
	// directory.MaxRelays.
	maxHistory = directory.MaxRelays
	// historyForget is how long a relay not seen Running is remembered.
	// By then its weights have decayed to a fifth and it comes back as a
	// newcomer would.
	historyForget = 30 * 24 * time.Hour
	// runEpsilon: a relay whose run weights have decayed below it has no
	// MTBF to speak of (Tor's STABILITY_EPSILON).
	runEpsilon = 0.0001
)

// record is what the seed remembers of one relay. Weighted quantities are
// in seconds.
type record struct {
	firstSeen time.Time // first listed Running by this seed
	lastUp    time.Time // last observation that found it Running
	up        bool      // Running at the last observation
	// unconfirmed: up when the history was saved, and not seen since this
	// process started. Absence is not a failure until the seed has had
	// time to hear from it (History.warmUntil).
	unconfirmed bool

	run        float64 // length of the current run while up, unweighted (as Tor)
	wUp        float64 // weighted time up: WFU's numerator
	wKnown     float64 // weighted time watched, up or down: WFU's denominator, Tor's "weighted time known"
	wRuns      float64 // weighted length of the finished runs: MTBF's numerator
	runWeights float64 // weighted count of the finished runs: MTBF's denominator

	okAt   time.Time      // last OR-port check that answered, for the prober after a restart
	okAddr netip.AddrPort // the address it answered on
	desc   []byte         // its last descriptor, as signed
	digest [32]byte       // desc's digest
}

// Stats is what the Guard and Stable rules read from a relay's history.
type Stats struct {
	FirstSeen time.Time
	// Known is the weighted time the seed has watched the relay, up or
	// down (Tor's weighted time known).
	Known time.Duration
	// Fraction is the weighted share of Known the relay was up (WFU),
	// 0 when nothing has been watched yet.
	Fraction float64
	// MTBF is the weighted mean length of its runs, the current one
	// included.
	MTBF time.Duration
}

// Sighting is a relay found Running at an observation.
type Sighting struct {
	Desc *directory.Descriptor
	OKAt time.Time // its last OR-port check that answered
}

// History is the seed's memory of relays. It is owned by the signing loop
// and not safe for concurrent use.
type History struct {
	recs map[keys.NodeID]*record
	// last is when the last observation was made, or when the saved
	// history was last observed before this process started.
	last time.Time
	// live says last was observed by this process: the span since it is
	// counted. The span across a restart is not: the seed did not watch
	// it, so it counts neither for a relay nor against it (as Tor's
	// correct_time shifts runs past an authority's downtime).
	live bool
	// maxSpan is the longest span between two observations that is
	// counted; a longer one means the seed itself was stalled.
	maxSpan time.Duration
	// warmUntil ends the grace after a start during which a relay that
	// was up when the history was saved may be absent without its run
	// ending.
	warmUntil time.Time
}

// NewHistory returns an empty history. maxSpan bounds the span between two
// observations that is counted (the seed signs at least every interval).
func NewHistory(maxSpan time.Duration) *History {
	return &History{recs: map[keys.NodeID]*record{}, maxSpan: maxSpan}
}

// Len returns how many relays are remembered.
func (h *History) Len() int { return len(h.recs) }

// Observe records that, at now, exactly the relays in up are Running (one
// sighting per node ID), and every other remembered relay is not. The span
// since the previous observation is credited to the state each relay was
// in at its start, as Tor ends a run only when it notices the relay down.
func (h *History) Observe(now time.Time, up map[keys.NodeID]Sighting) {
	var span float64
	decay := 1.0
	if !h.last.IsZero() && now.After(h.last) {
		dt := now.Sub(h.last)
		decay = math.Pow(decayAlpha, float64(dt)/float64(decayEvery))
		if h.live && dt <= h.maxSpan {
			span = dt.Seconds()
		}
	}
	warm := now.Before(h.warmUntil)
	for id, r := range h.recs {
		r.wUp *= decay
		r.wKnown *= decay
		r.wRuns *= decay
		r.runWeights *= decay
		s, isUp := up[id]
		if r.unconfirmed {
			// Not watched since the restart: the span counts for nothing.
			switch {
			case isUp:
				r.unconfirmed = false
				r.sighted(now, s)
			case !warm:
				r.unconfirmed = false
				r.endRun()
			}
			continue
		}
		r.wKnown += span
		if r.up {
			r.wUp += span
			r.run += span
		}
		switch {
		case r.up && !isUp:
			r.endRun()
		case !r.up && isUp:
			r.up, r.run = true, 0
		}
		if isUp {
			r.sighted(now, s)
		}
	}
	var added []keys.NodeID
	for id, s := range up {
		if _, ok := h.recs[id]; ok || s.Desc == nil {
			continue
		}
		r := &record{firstSeen: now, up: true}
		r.sighted(now, s)
		h.recs[id] = r
		added = append(added, id)
	}
	for id, r := range h.recs {
		if !r.up && now.Sub(r.lastUp) > historyForget {
			delete(h.recs, id)
		}
	}
	h.evict(added)
	h.last, h.live = now, true
}

// sighted notes a Running sighting: its time, descriptor and last check.
func (r *record) sighted(now time.Time, s Sighting) {
	r.lastUp = now
	if s.Desc == nil {
		return
	}
	if d := s.Desc.Digest(); d != r.digest || r.desc == nil {
		r.desc, r.digest = s.Desc.Bytes(), d
	}
	if !s.OKAt.IsZero() {
		r.okAt, r.okAddr = s.OKAt, s.Desc.ORAddr
	}
}

// endRun closes the current run: a failure, for MTBF.
func (r *record) endRun() {
	if r.up {
		r.wRuns += r.run
		r.runWeights++
	}
	r.up, r.run = false, 0
}

// evict keeps the table within maxHistory by forgetting the least useful
// relays: those down, then those with the least weighted uptime, never one
// just added (a newcomer must not push out a relay with history only to be
// pushed out itself).
func (h *History) evict(added []keys.NodeID) {
	over := len(h.recs) - maxHistory
	if over <= 0 {
		return
	}
	type cand struct {
		id keys.NodeID
		r  *record
	}
	var cands []cand
	for id, r := range h.recs {
		if !slices.Contains(added, id) {
			cands = append(cands, cand{id, r})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if a.r.up != b.r.up {
			if a.r.up {
				return 1
			}
			return -1
		}
		if a.r.wUp != b.r.wUp {
			if a.r.wUp < b.r.wUp {
				return -1
			}
			return 1
		}
		return slices.Compare(a.id[:], b.id[:])
	})
	for _, c := range cands[:min(over, len(cands))] {
		delete(h.recs, c.id)
	}
	// Only when every record is new could the table still be over.
	for _, id := range added {
		if len(h.recs) <= maxHistory {
			break
		}
		delete(h.recs, id)
	}
}

// Stats returns what the seed knows of id as of its last observation, and
// whether it knows the relay at all.
func (h *History) Stats(id keys.NodeID) (Stats, bool) {
	r, ok := h.recs[id]
	if !ok {
		return Stats{}, false
	}
	st := Stats{FirstSeen: r.firstSeen, Known: seconds(r.wKnown)}
	if r.wKnown > 0 {
		st.Fraction = min(1, r.wUp/r.wKnown)
	}
	// Tor's get_stability: the current run counts as if it ended now.
	runs, weights := r.wRuns, r.runWeights
	if r.up {
		runs += r.run
		weights++
	}
	if weights >= runEpsilon {
		st.MTBF = seconds(runs / weights)
	}
	return st, true
}

// lastCheck returns the relay's last OR-port check that answered, as
// remembered: its address and time.
func (h *History) lastCheck(id keys.NodeID) (netip.AddrPort, time.Time, bool) {
	r, ok := h.recs[id]
	if !ok || r.okAt.IsZero() {
		return netip.AddrPort{}, time.Time{}, false
	}
	return r.okAddr, r.okAt, true
}

// upGossipAddrs returns the gossip addresses of the remembered relays that
// were up at the last observation, from their last descriptors: whom a
// restarted seed joins to get its membership back at once.
func (h *History) upGossipAddrs() []string {
	var out []string
	for _, r := range h.recs {
		if !r.up || r.desc == nil {
			continue
		}
		if d, err := directory.ParseDescriptorAnyTime(r.desc); err == nil {
			out = append(out, d.GossipAddr.String())
		}
	}
	slices.Sort(out)
	return out
}

func seconds(s float64) time.Duration {
	if s >= float64(math.MaxInt64)/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}
