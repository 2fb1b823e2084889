package path

import (
	"fmt"
	"slices"
	"time"

	"veil/onion/keys"
)

// Path bias (SPEC.md §1.3), after Tor's path-spec "Detecting route
// manipulation by Guard nodes". Every circuit past the first hop is carried
// by the guard, which can destroy it, or drop the answer to an EXTEND or a
// BEGIN, whenever the next relays are not its own. A client that retried
// elsewhere and thought no more of it would end up on the circuits the
// guard lets through, which are the ones it controls. So the client counts,
// per kept guard, the circuits that got past the first hop and how many of
// them were completed, and the streams attempted on its circuits and how
// many reached their last hop; it warns when a guard's rate is low and stops
// using the guard when it is lower still.
const (
	// BiasMinCircuits is how many circuits past the first hop a guard
	// carries before its rate is judged: between Arti's 15 and Tor's 150
	// (pb_mincircs, set high for the CPU-overloaded relays of 2012). A
	// hostile guard gets through this many before it is caught, so fewer
	// is better; with honest relays failing one circuit in ten, the chance
	// that 30 fall below BiasDisableRate is below 10^-12.
	BiasMinCircuits = 30
	// BiasWarnRate and BiasDisableRate are the completed share of circuits
	// below which the client warns, and stops using the guard: Tor's
	// pb_warnpct and pb_extremepct.
	BiasWarnRate    = 0.50
	BiasDisableRate = 0.30
	// BiasScaleCircuits is the circuit count at which both counts are
	// halved, so that what a guard does now outweighs what it did long
	// ago (Tor's pb_scalecircs and pb_multfactor/pb_scalefactor).
	BiasScaleCircuits = 300
	// BiasMinStreams, BiasStreamWarnRate, BiasStreamDisableRate and
	// BiasScaleStreams are the same for streams: Tor's pb_minuse,
	// pb_noticeusepct, pb_extremeusepct and pb_scaleuse.
	BiasMinStreams        = 20
	BiasStreamWarnRate    = 0.80
	BiasStreamDisableRate = 0.60
	BiasScaleStreams      = 100
	// BiasDisabledFor is how long a guard stopped for path bias is
	// remembered and never chosen again: Tor's 120-day guard lifetime,
	// longer than any guard is kept.
	BiasDisabledFor = 120 * 24 * time.Hour
	// BiasFile is the name of the path-bias file in Options.DataDir.
	BiasFile = "pathbias"

	// maxBiasRecords bounds the path-bias file: the kept guards and the
	// most recently disabled ones.
	maxBiasRecords = 32
	// biasSaveEvery and biasSaveAfter say when counts are written: after
	// this many events or this long since the last write, whichever comes
	// first; a guard disabled is written at once.
	biasSaveEvery = 64
	biasSaveAfter = 30 * time.Second
)

// biasFile is SPEC.md §1.3.2: "NODEID CIRCUITS BUILT STREAMS SUCCEEDED
// DISABLED", DISABLED in Unix seconds, 0 for a guard in use.
var biasFile = stateFile{name: BiasFile, header: "veil pathbias v1\n", fields: 5, max: maxBiasRecords}

// Bias is a guard's path-bias record.
type Bias struct {
	// Circuits counts circuits through the guard that got past the first
	// hop, and Built those of them that were completed.
	Circuits, Built int
	// Streams counts streams attempted on circuits through the guard, and
	// Succeeded those that reached their last hop (which answered).
	Streams, Succeeded int
	// Warned says a rate is below its warning level.
	Warned bool
	// Disabled is when the guard was stopped for path bias; zero if not.
	Disabled time.Time
}

// rate returns ok/all and true once all reaches minimum; false before.
func rate(ok, all, minimum int) (float64, bool) {
	if all < minimum || all == 0 {
		return 0, false
	}
	return float64(ok) / float64(all), true
}

// biasBook is every guard's record, with what says when to write them.
type biasBook struct {
	guards   map[keys.NodeID]*Bias
	events   int       // counted since the last write
	lastSave time.Time // zero before the first
}

func (b *biasBook) load(recs []Bias, ids []keys.NodeID) {
	b.guards = make(map[keys.NodeID]*Bias, len(recs))
	for i := range recs {
		b.guards[ids[i]] = &recs[i]
	}
}

// CountCircuit counts a circuit through guard that got past the first hop:
// built says whether it was completed. It is ignored unless guard is a
// kept guard. A guard whose rate falls below BiasWarnRate is warned about;
// below BiasDisableRate it is no longer used, and is dropped from the guard
// list and remembered for BiasDisabledFor.
func (s *Selector) CountCircuit(guard keys.NodeID, built bool) {
	if built {
		s.count(guard, circuitBuilt)
	} else {
		s.count(guard, circuitFailed)
	}
}

// circuitBuilt and circuitFailed count one circuit.
func circuitBuilt(b *Bias)  { countCircuit(b, true) }
func circuitFailed(b *Bias) { countCircuit(b, false) }

func countCircuit(b *Bias, built bool) {
	b.Circuits++
	if built {
		b.Built++
	}
	if b.Circuits >= BiasScaleCircuits {
		b.Circuits, b.Built = b.Circuits/2, b.Built/2
	}
}

// CountStream counts a stream attempted on a circuit through guard:
// succeeded says whether the circuit's last hop answered it (CONNECTED, or
// END with a reason of its own). It is ignored unless guard is a kept
// guard; rates are judged as for CountCircuit, with the stream levels.
func (s *Selector) CountStream(guard keys.NodeID, succeeded bool) {
	s.count(guard, func(b *Bias) {
		b.Streams++
		if succeeded {
			b.Succeeded++
		}
		if b.Streams >= BiasScaleStreams {
			b.Streams, b.Succeeded = b.Streams/2, b.Succeeded/2
		}
	})
}

// GuardBias returns guard's path-bias record, and false if it has none.
func (s *Selector) GuardBias(guard keys.NodeID) (Bias, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bias.guards[guard]
	if b == nil {
		return Bias{}, false
	}
	return *b, true
}

// count applies f to guard's record and judges the result.
func (s *Selector) count(guard keys.NodeID, f func(*Bias)) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.countLocked(guard, now, f)
}

// countLocked is count with s.mu held.
func (s *Selector) countLocked(guard keys.NodeID, now time.Time, f func(*Bias)) {
	now = now.Truncate(time.Second)
	if !slices.ContainsFunc(s.guards, func(g guardRecord) bool { return g.ID == guard }) {
		return
	}
	if s.bias.guards == nil {
		s.bias.guards = map[keys.NodeID]*Bias{}
	}
	b := s.bias.guards[guard]
	if b == nil {
		b = &Bias{}
		s.bias.guards[guard] = b
	}
	f(b)
	s.bias.events++
	cr, cok := rate(b.Built, b.Circuits, BiasMinCircuits)
	sr, sok := rate(b.Succeeded, b.Streams, BiasMinStreams)
	switch {
	case cok && cr < BiasDisableRate, sok && sr < BiasStreamDisableRate:
		b.Disabled = now
		s.guards = slices.DeleteFunc(s.guards, func(g guardRecord) bool { return g.ID == guard })
		s.dirty = true
		s.log.Warn("path: a guard lets too few circuits or streams through; no longer using it (path bias)",
			"guard", guard.Short(), "circuits", b.Circuits, "built", b.Built, "streams", b.Streams, "succeeded", b.Succeeded)
		if err := s.save(); err != nil {
			s.log.Error("path: cannot drop a guard from the guard file", "err", err)
		}
		s.saveBias(now)
		return
	case cok && cr < BiasWarnRate, sok && sr < BiasStreamWarnRate:
		if !b.Warned {
			s.log.Warn("path: a guard lets few circuits or streams through; it may be choosing whom its clients reach (path bias)",
				"guard", guard.Short(), "circuits", b.Circuits, "built", b.Built, "streams", b.Streams, "succeeded", b.Succeeded)
		}
		b.Warned = true
	default:
		b.Warned = false
	}
	if s.bias.events >= biasSaveEvery || !now.Before(s.bias.lastSave.Add(biasSaveAfter)) {
		s.saveBias(now)
	}
}

// disabledLocked reports whether guard was stopped for path bias within
// BiasDisabledFor of now. s.mu must be held.
func (s *Selector) disabledLocked(guard keys.NodeID, now time.Time) bool {
	b := s.bias.guards[guard]
	return b != nil && !b.Disabled.IsZero() && now.Before(b.Disabled.Add(BiasDisabledFor))
}

// saveBias writes the records of the kept guards and of the guards
// disabled within BiasDisabledFor (the newest maxBiasRecords in all), and
// forgets the others. A failure is logged: the counts stay in memory and
// the next write tries again. s.mu must be held.
func (s *Selector) saveBias(now time.Time) {
	s.bias.events, s.bias.lastSave = 0, now
	type rec struct {
		id keys.NodeID
		b  *Bias
	}
	var keep []rec
	for id, b := range s.bias.guards {
		kept := slices.ContainsFunc(s.guards, func(g guardRecord) bool { return g.ID == id })
		if kept || s.disabledLocked(id, now) {
			keep = append(keep, rec{id, b})
		} else {
			delete(s.bias.guards, id)
		}
	}
	// Kept guards first, then the most recently disabled.
	slices.SortFunc(keep, func(a, b rec) int {
		switch {
		case a.b.Disabled.IsZero() != b.b.Disabled.IsZero():
			if a.b.Disabled.IsZero() {
				return -1
			}
			return 1
		case !a.b.Disabled.Equal(b.b.Disabled):
			return b.b.Disabled.Compare(a.b.Disabled)
		}
		return slices.Compare(a.id[:], b.id[:])
	})
	for _, r := range keep[min(len(keep), maxBiasRecords):] {
		delete(s.bias.guards, r.id)
	}
	keep = keep[:min(len(keep), maxBiasRecords)]
	if s.dir == "" {
		return
	}
	recs := make([]stateRecord, len(keep))
	for i, r := range keep {
		recs[i] = stateRecord{ID: r.id, N: []int64{int64(r.b.Circuits), int64(r.b.Built),
			int64(r.b.Streams), int64(r.b.Succeeded), unixOrZero(r.b.Disabled)}}
	}
	if err := biasFile.save(s.dir, recs); err != nil {
		s.log.Error("path: cannot keep path-bias counts", "err", err)
	}
}

// loadBias reads the path-bias file in dir; a missing file is no records.
// Counts must be consistent: no more built than attempted, none at or
// past its scaling point.
func loadBias(dir string) ([]Bias, []keys.NodeID, error) {
	recs, err := biasFile.load(dir)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Bias, len(recs))
	ids := make([]keys.NodeID, len(recs))
	for i, r := range recs {
		c, bu, st, su, dis := r.N[0], r.N[1], r.N[2], r.N[3], r.N[4]
		if bu > c || c >= BiasScaleCircuits || su > st || st >= BiasScaleStreams {
			return nil, nil, fmt.Errorf("path: path-bias file in %s: %w: line %d: counts %d/%d and %d/%d are not consistent (delete it to start afresh)",
				dir, errStateFile, i+2, bu, c, su, st)
		}
		out[i] = Bias{Circuits: int(c), Built: int(bu), Streams: int(st), Succeeded: int(su)}
		if dis != 0 {
			out[i].Disabled = time.Unix(dis, 0).UTC()
		}
		ids[i] = r.ID
	}
	return out, ids, nil
}
