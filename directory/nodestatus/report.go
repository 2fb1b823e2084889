package nodestatus

import (
	"time"

	"veil/directory"
	"veil/directory/dirclient"
	"veil/onion/keys"
)

// Report is what Build found about one node. Its JSON keys are for
// scripts: add, never rename.
type Report struct {
	Node   string `json:"node"`   // full node ID
	Role   string `json:"role"`   // "relay" or "seed"
	Source string `json:"source"` // SourceSeeds or SourceCache
	// State is the combined view's, as `veil status` says it for a
	// client (dirclient.StateFresh...), prefixed "cached" for SourceCache.
	State      string `json:"state"`
	ValidAfter string `json:"valid_after,omitempty"` // RFC 3339, UTC
	// Listed says the combined view lists the node; Flags and Measured
	// are its entry's there (Measured: the median of the counted seeds'
	// measurements, bytes per second, 0: not measured).
	Listed   bool     `json:"listed"`
	Flags    []string `json:"flags"`
	Measured uint64   `json:"measured"`
	Seeds    []Seed   `json:"seeds"`
	// Running is the node's own account from its /metrics, nil when
	// they could not be read (not running, or no metrics_addr).
	Running *Running `json:"running,omitempty"`
	// RunningErr says why Running is nil.
	RunningErr string `json:"running_error,omitempty"`
}

// Where a report's documents came from.
const (
	SourceSeeds = "seeds" // fetched now from the seeds that answered
	SourceCache = "cache" // no seed answered: the disk cache, possibly old
)

// Seed is one pinned seed's word on the node.
type Seed struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	// Answered says the seed served a valid document now; with
	// SourceCache it is false and the rest is from its cached document.
	Answered bool `json:"answered"`
	// Counted says its document is one of the majority the view rests on.
	Counted bool `json:"counted"`
	// HasDoc says there is a document of this seed to read Listed,
	// Flags and Measured from (answered, or cached).
	HasDoc   bool     `json:"has_document"`
	Listed   bool     `json:"listed"`
	Flags    []string `json:"flags"`
	Measured uint64   `json:"measured"` // bytes per second, 0: not measured
	// Reachable is the seed's Running flag: it found the node alive in
	// gossip and its OR port answering with its identity.
	Reachable bool `json:"reachable"`
}

// Build makes the report on node id from the combined view v (nil: none)
// and held, each pinned seed's document (nil: none), in seeds' order.
// fromCache says the documents are the disk cache's because no seed
// answered.
func Build(id keys.NodeID, role string, v *directory.View, held []*directory.Consensus, seeds []dirclient.Seed, fromCache bool, now time.Time) Report {
	r := Report{Node: id.String(), Role: role, Source: SourceSeeds, State: dirclient.StateNone, Flags: []string{}, Seeds: []Seed{}}
	counted := map[keys.NodeID]bool{}
	if v != nil {
		for _, pub := range v.Seeds {
			counted[keys.NodeIDFromIdentity(pub)] = true
		}
		r.State = stateOf(v, now)
		r.ValidAfter = v.ValidAfter.UTC().Format(time.RFC3339)
		if e, ok := v.ByID(id); ok {
			r.Listed, r.Flags, r.Measured = true, names(e.Flags), weightBytes(e.Weight)
		}
	}
	if fromCache {
		r.Source = SourceCache
		r.State = "cached, no seed answered (" + r.State + " by its own times)"
	}
	for i, s := range seeds {
		st := Seed{Name: s.Name, ID: s.ID.String(), Flags: []string{}, Counted: counted[s.ID]}
		if i < len(held) && held[i] != nil {
			st.HasDoc, st.Answered = true, !fromCache
			if e, ok := entryOf(held[i], id); ok {
				st.Listed, st.Flags, st.Measured = true, names(e.Flags), weightBytes(e.Weight)
				st.Reachable = e.Flags&directory.FlagRunning != 0
			}
		}
		r.Seeds = append(r.Seeds, st)
	}
	return r
}

// stateOf is where now falls in v's validity, in dirclient's words.
func stateOf(v *directory.View, now time.Time) string {
	switch {
	case now.Unix() > v.ValidUntil.Unix():
		return dirclient.StateExpired
	case now.Unix() >= v.FreshUntil.Unix():
		return dirclient.StateStale
	default:
		return dirclient.StateFresh
	}
}

func entryOf(c *directory.Consensus, id keys.NodeID) (directory.Entry, bool) {
	for _, e := range c.Relays {
		if e.Descriptor.NodeID() == id {
			return e, true
		}
	}
	return directory.Entry{}, false
}

func names(f directory.Flags) []string {
	if n := f.Names(); n != nil {
		return n
	}
	return []string{}
}

// weightBytes turns a consensus weight (KiB/s, directory/SPEC.md §5.6)
// into bytes per second.
func weightBytes(w uint32) uint64 { return uint64(w) << 10 }
