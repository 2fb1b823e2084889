package seed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"veil/directory"
	"veil/onion/keys"
)

// The history file (directory/SPEC.md §5.3.1): one JSON document, written
// whole with durable.WriteFile (temporary file, fsync, rename, fsync of
// the directory) so a crash leaves the old one or the new one.

const (
	// historyFileName is the file in the seed's data directory.
	historyFileName = "history.json"
	// historyPerm is its mode: it names every relay the seed has seen.
	historyPerm = 0o600
	// historyVersion is the format's version. Bump it, with SPEC.md §5.3.1,
	// for any change; a seed refuses a version it does not know.
	historyVersion = 1
	// maxHistoryFile bounds what a seed reads back: maxHistory records of
	// a base64 descriptor (4/3 of directory.MaxDescriptorLen) and 1 KiB of
	// fields each.
	maxHistoryFile = maxHistory * (directory.MaxDescriptorLen*4/3 + 1024)
)

// ErrHistoryFile is wrapped by every reason a history file is refused.
var ErrHistoryFile = errors.New("seed: history file")

type historyDoc struct {
	Version    int           `json:"version"`
	ObservedAt time.Time     `json:"observed_at"`
	Relays     []historyJSON `json:"relays"`
}

type historyJSON struct {
	ID             string     `json:"id"`
	FirstSeen      time.Time  `json:"first_seen"`
	LastUp         time.Time  `json:"last_up"`
	Up             bool       `json:"up"`
	RunS           float64    `json:"run_s"`
	WeightedUpS    float64    `json:"weighted_up_s"`
	WeightedKnownS float64    `json:"weighted_known_s"`
	WeightedRunsS  float64    `json:"weighted_runs_s"`
	RunWeights     float64    `json:"run_weights"`
	CheckOKAt      *time.Time `json:"check_ok_at,omitempty"`
	CheckOKAddr    string     `json:"check_ok_addr,omitempty"`
	Descriptor     []byte     `json:"descriptor"`
}

// Marshal encodes the history as the file holds it: records sorted by
// node ID, times in UTC, so equal histories give equal bytes.
func (h *History) Marshal() ([]byte, error) {
	doc := historyDoc{Version: historyVersion, ObservedAt: h.last.UTC().Round(0), Relays: make([]historyJSON, 0, len(h.recs))}
	for id, r := range h.recs {
		j := historyJSON{
			ID:             id.String(),
			FirstSeen:      r.firstSeen.UTC().Round(0),
			LastUp:         r.lastUp.UTC().Round(0),
			Up:             r.up,
			RunS:           r.run,
			WeightedUpS:    r.wUp,
			WeightedKnownS: r.wKnown,
			WeightedRunsS:  r.wRuns,
			RunWeights:     r.runWeights,
			Descriptor:     r.desc,
		}
		if !r.okAt.IsZero() {
			at := r.okAt.UTC().Round(0)
			j.CheckOKAt, j.CheckOKAddr = &at, r.okAddr.String()
		}
		doc.Relays = append(doc.Relays, j)
	}
	slices.SortFunc(doc.Relays, func(a, b historyJSON) int { return strings.Compare(a.ID, b.ID) })
	b, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		return nil, fmt.Errorf("seed: encode history: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseHistory decodes a history file. It refuses the whole file on the
// first fault (a file the seed did not write is not trusted in part): the
// caller starts afresh. maxSpan is as for NewHistory. The history comes
// back as of its last observation; Resume starts watching again.
func ParseHistory(b []byte, maxSpan time.Duration) (*History, error) {
	if len(b) > maxHistoryFile {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrHistoryFile, len(b), maxHistoryFile)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var doc historyDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHistoryFile, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the document", ErrHistoryFile)
	}
	if doc.Version != historyVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrHistoryFile, doc.Version, historyVersion)
	}
	if doc.ObservedAt.IsZero() {
		return nil, fmt.Errorf("%w: no observed_at", ErrHistoryFile)
	}
	if len(doc.Relays) > maxHistory {
		return nil, fmt.Errorf("%w: %d relays, limit %d", ErrHistoryFile, len(doc.Relays), maxHistory)
	}
	h := NewHistory(maxSpan)
	h.last = doc.ObservedAt
	for i, j := range doc.Relays {
		id, r, err := j.record()
		if err != nil {
			return nil, fmt.Errorf("%w: relay %d: %w", ErrHistoryFile, i, err)
		}
		if _, dup := h.recs[id]; dup {
			return nil, fmt.Errorf("%w: relay %d: %s listed twice", ErrHistoryFile, i, id.Short())
		}
		h.recs[id] = r
	}
	return h, nil
}

// record checks one entry and returns it.
func (j historyJSON) record() (keys.NodeID, *record, error) {
	id, err := keys.ParseNodeID(j.ID)
	if err != nil {
		return id, nil, err
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"run_s", j.RunS}, {"weighted_up_s", j.WeightedUpS}, {"weighted_known_s", j.WeightedKnownS},
		{"weighted_runs_s", j.WeightedRunsS}, {"run_weights", j.RunWeights}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return id, nil, fmt.Errorf("%s is %v, want a finite number ≥ 0", f.name, f.v)
		}
	}
	// Up time is part of the watched time; allow for rounding.
	if j.WeightedUpS > j.WeightedKnownS*(1+1e-9)+1e-6 {
		return id, nil, fmt.Errorf("weighted_up_s %v exceeds weighted_known_s %v", j.WeightedUpS, j.WeightedKnownS)
	}
	if !j.Up && j.RunS != 0 {
		return id, nil, errors.New("run_s set while not up")
	}
	if j.FirstSeen.IsZero() || j.LastUp.Before(j.FirstSeen) {
		return id, nil, errors.New("last_up before first_seen")
	}
	r := &record{
		firstSeen: j.FirstSeen, lastUp: j.LastUp, up: j.Up, run: j.RunS,
		wUp: j.WeightedUpS, wKnown: j.WeightedKnownS, wRuns: j.WeightedRunsS, runWeights: j.RunWeights,
	}
	if (j.CheckOKAt == nil) != (j.CheckOKAddr == "") {
		return id, nil, errors.New("check_ok_at and check_ok_addr go together")
	}
	if j.CheckOKAt != nil {
		if r.okAddr, err = netip.ParseAddrPort(j.CheckOKAddr); err != nil {
			return id, nil, fmt.Errorf("check_ok_addr: %w", err)
		}
		r.okAt = *j.CheckOKAt
	}
	d, err := directory.ParseDescriptorAnyTime(j.Descriptor)
	if err != nil {
		return id, nil, fmt.Errorf("descriptor: %w", err)
	}
	if d.NodeID() != id {
		return id, nil, fmt.Errorf("descriptor of %s under %s", d.NodeID().Short(), id.Short())
	}
	r.desc, r.digest = d.Bytes(), d.Digest()
	return id, r, nil
}

// Resume starts watching again at now after a restart: the span since the
// saved observation is not counted, and a relay that was up is given until
// now+warm to be seen again before its run ends.
func (h *History) Resume(now time.Time, warm time.Duration) {
	h.live = false
	h.warmUntil = now.Add(warm)
	for _, r := range h.recs {
		if r.up {
			r.unconfirmed = true
		}
	}
}
