package path

import (
	"time"

	"veil/directory"
	"veil/onion/keys"
)

// UnreachableVia tells the selector that a circuit through guard could not
// be extended to relay id: the guard said it could not connect, or no
// answer came in time. The client cannot tell a relay that is down from a
// guard that says so, or drops the answer, because the relay is not its
// own (SPEC.md §1.3). So for UnreachableFor, draws for circuits through
// guard pass id over, as Unreachable does, and each draw that lands on it
// counts a failed circuit against guard: the client does not build a
// circuit it expects to fail, and the guard's record is what it would
// have been had the circuit been built. A guard that fails circuits to
// honest relays to push its clients onto its own gains nothing by it.
func (s *Selector) UnreachableVia(guard, id keys.NodeID) {
	now := s.now()
	s.umu.Lock()
	defer s.umu.Unlock()
	if s.reported == nil {
		s.reported = map[keys.NodeID]map[keys.NodeID]time.Time{}
	}
	for g, marks := range s.reported {
		for r, until := range marks {
			if !now.Before(until) {
				delete(marks, r)
			}
		}
		if len(marks) == 0 {
			delete(s.reported, g)
		}
	}
	if s.reported[guard] == nil {
		s.reported[guard] = map[keys.NodeID]time.Time{}
	}
	s.reported[guard][id] = now.Add(UnreachableFor)
}

// reported is the relays a guard said it could not reach, as of one
// moment.
type reported map[keys.NodeID]time.Time

// reportedVia returns the relays guard reported unreachable, still marked
// at now.
func (s *Selector) reportedVia(guard keys.NodeID, now time.Time) reported {
	s.umu.Lock()
	defer s.umu.Unlock()
	var out reported
	for id, until := range s.reported[guard] {
		if now.Before(until) {
			if out == nil {
				out = reported{}
			}
			out[id] = until
		}
	}
	return out
}

// reported says whether d is among them; with none marked (the usual
// case) it hashes no key.
func (r reported) reported(d *directory.Descriptor) bool {
	if len(r) == 0 {
		return false
	}
	_, ok := r[d.NodeID()]
	return ok
}
