package dirclient

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"veil/directory"
	"veil/onion/keys"
)

// Status states of a view, as WriteStatus reports them.
const (
	StateFresh   = "fresh"           // before fresh-until
	StateStale   = "stale but valid" // after fresh-until, before valid-until: usable, a fetch is due
	StateExpired = "expired"         // after valid-until: not used for paths
	StateNone    = "none"            // no majority view
)

// viewState says where now falls in v's validity.
func viewState(v *directory.View, now time.Time) string {
	switch {
	case v == nil:
		return StateNone
	case now.Unix() > v.ValidUntil.Unix():
		return StateExpired
	case now.Unix() >= v.FreshUntil.Unix():
		return StateStale
	default:
		return StateFresh
	}
}

// statusJSON is WriteStatus's JSON form. The keys are for scripts: add,
// never rename.
type statusJSON struct {
	State string `json:"state"`
	// Offline says no seed answered and the view is the disk cache's:
	// its state is what the cache says, not what the network says now.
	Offline    bool        `json:"offline,omitempty"`
	ValidAfter string      `json:"valid_after,omitempty"` // RFC 3339, UTC
	FreshUntil string      `json:"fresh_until,omitempty"`
	ValidUntil string      `json:"valid_until,omitempty"`
	Seeds      []seedJSON  `json:"seeds"`
	Relays     []relayJSON `json:"relays"`
}

type seedJSON struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	ID      string `json:"id"`
	Counted bool   `json:"counted"` // its document is part of the majority view
}

type relayJSON struct {
	Name            string   `json:"name"` // nickname: not unique
	ID              string   `json:"id"`   // full node ID
	ORAddr          string   `json:"or_addr"`
	Flags           []string `json:"flags"`
	Bandwidth       uint64   `json:"bandwidth"` // bytes per second, the relay's estimate
	Measured        uint64   `json:"measured"`  // bytes per second, the seeds' median measurement; 0: not measured
	ExitPolicy      []string `json:"exit_policy"`
	StorageCapacity uint64   `json:"storage_capacity"`
	Usable          bool     `json:"usable"` // its descriptor is valid now
}

// WriteStatus writes what `veil status` shows: the pinned seeds and whether
// each one's document counted, the view's validity times and state, and
// every relay in the view (by nickname, then node ID) with its node ID, OR
// address and flags. v may be nil (no view). With asJSON it writes one JSON
// object and a newline:
//
//	{"state": "fresh" | "stale but valid" | "expired" | "none",
//	 "valid_after", "fresh_until", "valid_until": RFC 3339 UTC (absent without a view),
//	 "seeds": [{"name", "url", "id", "counted": bool}],
//	 "relays": [{"name": nickname, "id": full node ID, "or_addr": "host:port",
//	             "flags": ["Exit", ...], "bandwidth": bytes/s claimed,
//	             "measured": bytes/s measured by the seeds (0: not), "exit_policy": [rules],
//	             "storage_capacity": bytes, "usable": descriptor valid now}]}
//
// Keys are only ever added, so scripts can rely on them.
func WriteStatus(w io.Writer, v *directory.View, seeds []Seed, now time.Time, asJSON bool) error {
	return writeStatus(w, v, seeds, now, asJSON, false)
}

// WriteCachedStatus is WriteStatus for a view read from the disk cache
// because no seed answered: it says so, in the state and beside each seed
// ("cached", never "yes"), so a cached document is never shown as the
// network's fresh word.
func WriteCachedStatus(w io.Writer, v *directory.View, seeds []Seed, now time.Time, asJSON bool) error {
	return writeStatus(w, v, seeds, now, asJSON, true)
}

func writeStatus(w io.Writer, v *directory.View, seeds []Seed, now time.Time, asJSON, offline bool) error {
	st := statusJSON{State: viewState(v, now), Seeds: []seedJSON{}, Relays: []relayJSON{}}
	counted := map[keys.NodeID]bool{}
	var entries []directory.Entry
	if v != nil {
		st.ValidAfter = v.ValidAfter.UTC().Format(time.RFC3339)
		st.FreshUntil = v.FreshUntil.UTC().Format(time.RFC3339)
		st.ValidUntil = v.ValidUntil.UTC().Format(time.RFC3339)
		for _, pub := range v.Seeds {
			counted[keys.NodeIDFromIdentity(pub)] = true
		}
		entries = slices.Clone(v.Relays)
	}
	for _, s := range seeds {
		st.Seeds = append(st.Seeds, seedJSON{Name: s.Name, URL: s.URL, ID: s.ID.String(), Counted: counted[s.ID]})
	}
	slices.SortFunc(entries, func(a, b directory.Entry) int {
		ia, ib := a.Descriptor.NodeID(), b.Descriptor.NodeID()
		return cmp.Or(strings.Compare(a.Descriptor.Nickname, b.Descriptor.Nickname), strings.Compare(ia.String(), ib.String()))
	})
	for _, e := range entries {
		d := e.Descriptor
		r := relayJSON{
			Name:            d.Nickname,
			ID:              d.NodeID().String(),
			ORAddr:          d.ORAddr.String(),
			Flags:           e.Flags.Names(),
			Bandwidth:       d.Bandwidth,
			Measured:        uint64(e.Weight) << 10,
			ExitPolicy:      d.ExitPolicy().Lines(),
			StorageCapacity: d.StorageCapacity,
			Usable:          d.CheckTime(now) == nil,
		}
		if r.Flags == nil {
			r.Flags = []string{}
		}
		st.Relays = append(st.Relays, r)
	}
	if offline {
		st.Offline = true
		st.State = "cached, no seed answered (" + st.State + " by its own times)"
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return writeText(w, st, v, seeds, now)
}

func writeText(w io.Writer, st statusJSON, v *directory.View, seeds []Seed, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	ncounted := 0
	for _, s := range st.Seeds {
		if s.Counted {
			ncounted++
		}
	}
	fmt.Fprintf(tw, "seeds: %d pinned, %d counted, %d needed for a majority\n", len(seeds), ncounted, len(seeds)/2+1)
	fmt.Fprintf(tw, "  NAME\tURL\tID\tCOUNTED\n")
	for i, s := range st.Seeds {
		yes := "no"
		switch {
		case s.Counted && st.Offline:
			yes = "cached"
		case s.Counted:
			yes = "yes"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.Name, s.URL, seeds[i].ID.Short(), yes)
	}
	tw.Flush()
	if v == nil {
		fmt.Fprintf(tw, "\nconsensus: none (no majority of the pinned seeds gave a usable document)\n")
		return tw.Flush()
	}
	fmt.Fprintf(tw, "\nconsensus: %s\n", st.State)
	fmt.Fprintf(tw, "  valid-after\t%s\t%s\n", st.ValidAfter, relative(v.ValidAfter, now))
	fmt.Fprintf(tw, "  fresh-until\t%s\t%s\n", st.FreshUntil, relative(v.FreshUntil, now))
	fmt.Fprintf(tw, "  valid-until\t%s\t%s\n", st.ValidUntil, relative(v.ValidUntil, now))
	tw.Flush()
	usable := 0
	for _, r := range st.Relays {
		if r.Usable {
			usable++
		}
	}
	fmt.Fprintf(tw, "\nrelays: %d (%d with a valid descriptor)\n", len(st.Relays), usable)
	if len(st.Relays) > 0 {
		fmt.Fprintf(tw, "  NICKNAME\tID\tOR ADDRESS\tMEASURED\tFLAGS\n")
	}
	for _, r := range st.Relays {
		id, _ := keys.ParseNodeID(r.ID)
		flags := strings.Join(r.Flags, " ")
		if flags == "" {
			flags = "-"
		}
		if !r.Usable {
			flags += " (descriptor not valid now)"
		}
		measured := "-"
		if r.Measured > 0 {
			measured = fmt.Sprintf("%.1f MB/s", float64(r.Measured)/1e6)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", r.Name, id.Short(), r.ORAddr, measured, flags)
	}
	return tw.Flush()
}

// relative says how far t is from now, to the second: "in 42s", "3m0s ago".
func relative(t, now time.Time) string {
	d := t.Sub(now).Truncate(time.Second)
	if d >= 0 {
		return "in " + d.String()
	}
	return (-d).String() + " ago"
}
