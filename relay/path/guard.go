package path

import (
	"fmt"
	"slices"
	"time"

	"veil/directory"
)

// guard returns the first kept guard usable in v at now that ok accepts
// (nil accepts all), after dropping guards past their lifetime or down for
// longer than the down limit and noting which are down. When none serves
// it chooses a new guard, if the list has room, and keeps it. The guard
// file is rewritten whenever the list changed; if that fails the change
// stays in memory, guard fails, and the next call tries again, so no
// circuit uses a guard the next start would not remember.
//
// Why a list and not one guard: a guard that is missing from one
// consensus often comes back (a restart, a seed that missed it). Choosing
// and keeping a new guard at every blip would expose the client to a new
// relay each time, which is what guards exist to prevent, while refusing
// to build circuits until it returns would make the client unusable. So a
// missing guard stays first in the list, the next one serves meanwhile,
// and the first is used again when it returns (SPEC.md §1.1).
func (s *Selector) guard(v *directory.View, now time.Time, ok func(directory.Entry) bool) (directory.Entry, error) {
	if v == nil {
		return directory.Entry{}, errorf(ErrNoGuard, "no usable guard: no view of the network")
	}
	now = now.Truncate(time.Second) // the file's resolution
	s.mu.Lock()
	defer s.mu.Unlock()

	var found *directory.Entry
	kept := s.guards[:0:0]
	for _, g := range s.guards {
		if g.Chosen.After(now) {
			// The clock went back, or the file came from another
			// machine: restart the lifetime now rather than keep the
			// guard for however far ahead the time is.
			g.Chosen = now
			s.dirty = true
		}
		if s.disabledLocked(g.ID, now) {
			// Stopped for path bias while kept by another process, or
			// the guard file was not rewritten: it is not used again.
			s.log.Info("path: guard was stopped for path bias; dropping it", "guard", g.ID.Short())
			s.dirty = true
			continue
		}
		if !now.Before(g.Chosen.Add(s.lifetime)) {
			s.log.Info("path: guard reached its lifetime; dropping it", "guard", g.ID.Short(), "chosen", g.Chosen)
			s.dirty = true
			continue
		}
		e, listed := v.ByID(g.ID)
		usable := listed && has(e, flagsGuard, now) && s.reachable(g.ID, now)
		switch {
		case usable && !g.Down.IsZero():
			s.log.Info("path: guard is usable again", "guard", name(e))
			g.Down = time.Time{}
			s.dirty = true
		case !usable && g.Down.IsZero():
			s.log.Info("path: guard is not usable; keeping it in case it returns", "guard", g.ID.Short(), "listed", listed)
			g.Down = now
			s.dirty = true
		case !usable && !now.Before(g.Down.Add(s.downLimit)):
			s.log.Info("path: guard has been unusable too long; dropping it", "guard", g.ID.Short(), "since", g.Down)
			s.dirty = true
			continue
		}
		kept = append(kept, g)
		if usable && found == nil && (ok == nil || ok(e)) {
			found = &e
		}
	}
	s.guards = kept
	if found != nil {
		return *found, s.save()
	}
	if len(s.guards) >= MaxGuards {
		err := errorf(ErrNoGuard, "no usable guard: all %d kept guards are down or unsuitable, and a guard is dropped only %v after it goes down",
			len(s.guards), s.downLimit)
		return directory.Entry{}, joinSave(err, s.save())
	}
	// Any Guard relay that fits, is not kept already and was not stopped
	// for path bias; a node ID is hashed only for relays drawn.
	skip := func(e directory.Entry, _ bool) bool {
		if ok != nil && !ok(e) {
			return true
		}
		if len(s.guards) == 0 && len(s.bias.guards) == 0 {
			return false
		}
		id := e.Descriptor.NodeID()
		return slices.ContainsFunc(s.guards, func(g guardRecord) bool { return g.ID == id }) || s.disabledLocked(id, now)
	}
	ds := s.draws(v, now)
	g, drawn, err := ds.guards.drawExcept(s.rand, ds.dw, posGuard, skip)
	if err != nil {
		return directory.Entry{}, joinSave(err, s.save())
	}
	if !drawn && len(ds.running) == 0 {
		err := errorf(ErrNoGuard, "no usable guard: the consensus lists no running relay")
		return directory.Entry{}, joinSave(err, s.save())
	}
	if !drawn && len(ds.guards.es) == 0 {
		err := errorf(ErrNoGuard, "no usable guard: the consensus lists %d running relays and none has the Guard flag (a seed gives it after its guard_min_uptime)", len(ds.running))
		return directory.Entry{}, joinSave(err, s.save())
	}
	if !drawn {
		err := errorf(ErrNoGuard, "no usable guard: the view lists no running Guard relay that fits")
		return directory.Entry{}, joinSave(err, s.save())
	}
	// The record's time is put back by a random part of a tenth of the
	// lifetime, as Tor does with a guard's sampled-on date: a guard then
	// lives 90–100 % of the lifetime, so the day a client changes guards
	// does not follow from the day it chose one (an observer who saw one
	// change cannot predict the next to the hour).
	back, err := uniform(s.rand, uint64(s.lifetime/10)+1)
	if err != nil {
		return directory.Entry{}, joinSave(err, s.save())
	}
	s.guards = append(s.guards, guardRecord{ID: g.Descriptor.NodeID(), Chosen: now.Add(-time.Duration(back))})
	s.dirty = true
	s.log.Info("path: chose a new guard", "guard", name(g), "kept", len(s.guards))
	if err := s.save(); err != nil {
		return directory.Entry{}, err
	}
	return g, nil
}

// save writes the guard list if it changed since the last write. s.mu
// must be held.
func (s *Selector) save() error {
	if !s.dirty || s.dir == "" {
		s.dirty = false
		return nil
	}
	if err := saveGuards(s.dir, s.guards); err != nil {
		s.log.Error("path: cannot keep guards", "err", err)
		return err
	}
	s.dirty = false
	return nil
}

// joinSave returns err, noting a failure to write the guard file too.
func joinSave(err, saveErr error) error {
	if saveErr != nil {
		return fmt.Errorf("%w (and %v)", err, saveErr)
	}
	return err
}
