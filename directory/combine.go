package directory

// The client's majority rule (SPEC.md §6, DESIGN.md G8).

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"time"

	"veil/onion/keys"
)

// View is what a client builds circuits from: the relays that a strict
// majority of its pinned seeds list with the same descriptor.
type View struct {
	ValidAfter time.Time           // the latest valid-after of the counted documents
	FreshUntil time.Time           // the earliest fresh-until: fetch again after it
	ValidUntil time.Time           // the earliest valid-until: the majority is not backed after it
	Seeds      []ed25519.PublicKey // the seeds whose documents counted, in pinned order
	Relays     []Entry             // ascending by node ID
	Refused    []error             // documents that did not count, and why; for logs
}

// ByID returns the relay with node ID id.
func (v *View) ByID(id keys.NodeID) (Entry, bool) {
	i, ok := slices.BinarySearchFunc(v.Relays, id, func(e Entry, id keys.NodeID) int {
		n := e.Descriptor.NodeID()
		return bytes.Compare(n[:], id[:])
	})
	if !ok {
		return Entry{}, false
	}
	return v.Relays[i], true
}

// Usable returns the relays whose descriptors are valid at now. A
// consensus may list a descriptor that expires before the consensus does;
// a client skips it until a newer consensus carries its successor.
func (v *View) Usable(now time.Time) []Entry {
	var out []Entry
	for _, e := range v.Relays {
		if e.Descriptor.CheckTime(now) == nil {
			out = append(out, e)
		}
	}
	return out
}

// Combine applies the majority rule to documents from ParseConsensus (or
// Sign). pinned are the node IDs of the seeds the client trusts (conf
// [[seed]] identity); a seed listed twice counts once.
//
// A document counts only if its seed is pinned and it is valid at now; of
// several from one seed only the one with the latest valid-after counts,
// and if a seed signed two different documents with that valid-after,
// neither does. With P distinct pinned seeds, a relay is in the View when at
// least P/2+1 counted documents list it with the same descriptor digest,
// and each of its flags is set when at least P/2+1 of those documents set
// it. Combine fails with ErrNoMajority when fewer than P/2+1 documents count.
func Combine(docs []*Consensus, pinned []keys.NodeID, now time.Time) (*View, error) {
	seedIndex := make(map[keys.NodeID]int, len(pinned))
	for _, id := range pinned {
		if _, ok := seedIndex[id]; !ok {
			seedIndex[id] = len(seedIndex)
		}
	}
	need := len(seedIndex)/2 + 1
	best := make([]*Consensus, len(seedIndex))
	conflict := make([]bool, len(seedIndex))
	v := &View{}
	for i, doc := range docs {
		if doc == nil || doc.raw == nil {
			v.Refused = append(v.Refused, malformedf("directory: combine: document %d was neither signed nor parsed", i+1))
			continue
		}
		s, ok := seedIndex[doc.SeedID()]
		if !ok {
			v.Refused = append(v.Refused, errorf(ErrUnpinned, "directory: consensus signed by seed %s, which is not pinned", doc.SeedID()))
			continue
		}
		if err := doc.CheckTime(now); err != nil {
			v.Refused = append(v.Refused, err)
			continue
		}
		switch cur := best[s]; {
		case cur == nil || doc.ValidAfter.Unix() > cur.ValidAfter.Unix():
			best[s], conflict[s] = doc, false
		case doc.ValidAfter.Unix() == cur.ValidAfter.Unix() && doc.digest != cur.digest:
			conflict[s] = true
		}
	}
	var counted []*Consensus
	for s, doc := range best {
		switch {
		case doc == nil:
		case conflict[s]:
			v.Refused = append(v.Refused, errorf(ErrEquivocation, "directory: seed %s signed two documents valid after %s; neither counts",
				doc.SeedID(), doc.ValidAfter.Format(time.RFC3339)))
		default:
			counted = append(counted, doc)
		}
	}
	if len(counted) < need {
		return nil, &majorityError{
			msg: fmt.Sprintf("directory: %d of %d pinned seeds gave a usable consensus, need %d",
				len(counted), len(seedIndex), need),
			refused: v.Refused,
		}
	}

	v.ValidAfter, v.FreshUntil, v.ValidUntil = counted[0].ValidAfter, counted[0].FreshUntil, counted[0].ValidUntil
	for _, doc := range counted {
		v.Seeds = append(v.Seeds, doc.SeedKey)
		if doc.ValidAfter.Unix() > v.ValidAfter.Unix() {
			v.ValidAfter = doc.ValidAfter
		}
		if doc.FreshUntil.Unix() < v.FreshUntil.Unix() {
			v.FreshUntil = doc.FreshUntil
		}
		if doc.ValidUntil.Unix() < v.ValidUntil.Unix() {
			v.ValidUntil = doc.ValidUntil
		}
	}
	v.Relays = tally(counted, need)
	return v, nil
}

// vote counts the documents that list one descriptor, flag by flag, and
// keeps the weight each gives it.
type vote struct {
	desc    *Descriptor
	votes   int
	flags   [16]int
	weights []uint32
}

// tally returns the entries that at least need documents agree on. Each
// document lists a node at most once (ParseConsensus), so at most one
// descriptor of a node can reach a strict majority.
func tally(docs []*Consensus, need int) []Entry {
	type key struct {
		id     keys.NodeID
		digest [32]byte
	}
	votes := make(map[key]*vote)
	for _, doc := range docs {
		for _, e := range doc.Relays {
			k := key{e.Descriptor.NodeID(), e.Descriptor.Digest()}
			t := votes[k]
			if t == nil {
				t = &vote{desc: e.Descriptor}
				votes[k] = t
			}
			t.votes++
			t.weights = append(t.weights, e.Weight)
			for bit := range t.flags {
				if e.Flags&(1<<bit) != 0 {
					t.flags[bit]++
				}
			}
		}
	}
	var out []Entry
	for _, t := range votes {
		if t.votes < need {
			continue
		}
		var f Flags
		for bit, n := range t.flags {
			if n >= need {
				f |= 1 << bit
			}
		}
		out = append(out, Entry{Flags: f, Weight: medianWeight(t.weights), Descriptor: t.desc})
	}
	slices.SortFunc(out, func(a, b Entry) int {
		ia, ib := a.Descriptor.NodeID(), b.Descriptor.NodeID()
		return bytes.Compare(ia[:], ib[:])
	})
	return out
}

// medianWeight is the median of the weights the documents give one relay,
// the lower of the two middle ones for an even count: a minority of seeds
// that measure a relay too high (or 0, not at all) cannot move it past
// what the honest seeds measured (SPEC.md §6).
func medianWeight(ws []uint32) uint32 {
	slices.Sort(ws)
	return ws[(len(ws)-1)/2]
}

// majorityError says how many seeds counted and why the others did not.
type majorityError struct {
	msg     string
	refused []error
}

func (e *majorityError) Error() string {
	if len(e.refused) == 0 {
		return e.msg
	}
	parts := make([]string, len(e.refused))
	for i, err := range e.refused {
		parts[i] = err.Error()
	}
	return e.msg + ": " + strings.Join(parts, "; ")
}

func (e *majorityError) Unwrap() []error { return append([]error{ErrNoMajority}, e.refused...) }
