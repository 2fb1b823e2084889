package path

import (
	"fmt"
	"slices"
	"time"

	"veil/directory"
	"veil/onion/keys"
)

// Vanguards (SPEC.md §3), after Tor's vanguards-lite: the middle of every
// PathTo circuit (the shard circuits of share, fetch and repair) is one of
// a few second-hop relays the client keeps for days. With a fresh middle
// per circuit, the 1,500 circuits of a 100 MB share give a relay that holds
// some storage relays about 1,500 chances to also be the middle of a
// circuit to one of them, and so to see the sharer's guard; with
// vanguards it gets as many chances as the client has vanguards, and a
// new one only when one expires.
const (
	// NumVanguards is how many vanguards a client keeps: Tor's four
	// layer-2 guards.
	NumVanguards = 4
	// VanguardMinLifetime and VanguardMaxLifetime bound a vanguard's
	// lifetime, drawn as the larger of two uniform draws between them
	// (Tor's 1 to 12 days with max(X, X), about 8.3 days on average): long
	// enough that a hostile relay waits days for a turn, short enough that
	// a client that drew one is not stuck with it.
	VanguardMinLifetime = 24 * time.Hour
	VanguardMaxLifetime = 12 * 24 * time.Hour
	// VanguardFile is the name of the vanguard file in Options.DataDir.
	VanguardFile = "vanguards"
)

// vanguardFile is SPEC.md §3.2: "NODEID CHOSEN EXPIRES" in Unix seconds.
var vanguardFile = stateFile{name: VanguardFile, header: "veil vanguards v1\n", fields: 2, max: NumVanguards}

// vanguardRecord is one vanguard the client keeps.
type vanguardRecord struct {
	ID      keys.NodeID
	Chosen  time.Time // when it was drawn
	Expires time.Time // when it is replaced
}

func marshalVanguards(vs []vanguardRecord) []stateRecord {
	out := make([]stateRecord, len(vs))
	for i, v := range vs {
		out[i] = stateRecord{ID: v.ID, N: []int64{v.Chosen.Unix(), v.Expires.Unix()}}
	}
	return out
}

// parseVanguards checks what the numbers of the vanguard file mean: a
// vanguard expires after it was chosen and at most VanguardMaxLifetime
// later.
func parseVanguards(recs []stateRecord) ([]vanguardRecord, error) {
	out := make([]vanguardRecord, len(recs))
	for i, r := range recs {
		chosen, expires := time.Unix(r.N[0], 0).UTC(), time.Unix(r.N[1], 0).UTC()
		if !expires.After(chosen) || expires.Sub(chosen) > VanguardMaxLifetime {
			return nil, fmt.Errorf("%w: line %d: vanguard %s lives from %d to %d, not within %v",
				errStateFile, i+2, r.ID.Short(), r.N[0], r.N[1], VanguardMaxLifetime)
		}
		out[i] = vanguardRecord{ID: r.ID, Chosen: chosen, Expires: expires}
	}
	return out, nil
}

// loadVanguards reads the vanguard file in dir; a missing file is none.
func loadVanguards(dir string) ([]vanguardRecord, error) {
	recs, err := vanguardFile.load(dir)
	if err != nil {
		return nil, err
	}
	vs, err := parseVanguards(recs)
	if err != nil {
		return nil, fmt.Errorf("path: vanguard file in %s: %w (delete it to draw new vanguards)", dir, err)
	}
	return vs, nil
}

// vanguardLifetime draws a lifetime: the larger of two uniform draws in
// [VanguardMinLifetime, VanguardMaxLifetime], to the second.
func vanguardLifetime(s *Selector) (time.Duration, error) {
	span := uint64((VanguardMaxLifetime - VanguardMinLifetime) / time.Second)
	a, err := uniform(s.rand, span+1)
	if err != nil {
		return 0, err
	}
	b, err := uniform(s.rand, span+1)
	if err != nil {
		return 0, err
	}
	return VanguardMinLifetime + time.Duration(max(a, b))*time.Second, nil
}

// vanguardsLocked returns the client's vanguards listed as running in v
// at now, after replacing those that expired or left the view, and
// drawing new ones, at the middle position's weights, up to
// NumVanguards. A change is written to the vanguard file before the
// vanguards are returned; if that fails, so does the call (as for guards:
// no circuit uses a vanguard the next start would not remember). s.mu
// must be held.
//
// A vanguard is not replaced because circuits through it fail: the guard
// carries those circuits and could fail them at will, and replacing
// vanguards on its say would let it push the client through vanguards it
// runs. Failures count against the guard instead (SPEC.md §1.3).
func (s *Selector) vanguardsLocked(v *directory.View, now time.Time, ds *drawSet) ([]directory.Entry, error) {
	now = now.Truncate(time.Second)
	kept := s.vanguards[:0:0]
	var out []directory.Entry
	for _, g := range s.vanguards {
		if g.Chosen.After(now) {
			// The clock went back: keep the vanguard no longer than a
			// lifetime from now.
			g.Chosen = now
			if latest := now.Add(VanguardMaxLifetime); g.Expires.After(latest) {
				g.Expires = latest
			}
			s.vdirty = true
		}
		if !now.Before(g.Expires) {
			s.log.Info("path: vanguard reached its lifetime; replacing it", "vanguard", g.ID.Short())
			s.vdirty = true
			continue
		}
		e, listed := v.ByID(g.ID)
		if !listed || !has(e, flagsRunning, now) {
			s.log.Info("path: vanguard is not running in the view; replacing it", "vanguard", g.ID.Short(), "listed", listed)
			s.vdirty = true
			continue
		}
		kept = append(kept, g)
		out = append(out, e)
	}
	// Drawn as Tor and Arti draw them: Stable relays (any running relay
	// once no Stable one is left) at the middle position's weights; a
	// node ID is hashed only for relays drawn.
	var cands cumulative
	if len(kept) < NumVanguards {
		cands = newCumulative(listedIn(ds.running, directory.FlagStable), ds.dw, posMiddle)
	}
	skip := func(e directory.Entry, _ bool) bool {
		id := e.Descriptor.NodeID()
		return slices.ContainsFunc(kept, func(g vanguardRecord) bool { return g.ID == id }) ||
			slices.ContainsFunc(s.guards, func(g guardRecord) bool { return g.ID == id })
	}
	for len(kept) < NumVanguards {
		e, drawn, err := cands.drawExcept(s.rand, ds.dw, posMiddle, skip)
		if err != nil {
			return nil, err
		}
		if !drawn && len(cands.es) < len(ds.running) {
			cands = ds.middles
			continue
		}
		if !drawn {
			break
		}
		life, err := vanguardLifetime(s)
		if err != nil {
			return nil, err
		}
		kept = append(kept, vanguardRecord{ID: e.Descriptor.NodeID(), Chosen: now, Expires: now.Add(life)})
		out = append(out, e)
		s.vdirty = true
		s.log.Info("path: chose a new vanguard", "vanguard", name(e), "until", now.Add(life))
	}
	s.vanguards = kept
	if s.vdirty && s.dir != "" {
		if err := vanguardFile.save(s.dir, marshalVanguards(s.vanguards)); err != nil {
			s.log.Error("path: cannot keep vanguards", "err", err)
			return nil, err
		}
	}
	s.vdirty = false
	return out, nil
}
