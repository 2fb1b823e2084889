// Package accounting counts a relay's bytes per accounting period and
// says when accounting_max is spent, after Tor's AccountingMax,
// AccountingStart and AccountingRule. The relay hibernates then, until the
// next period (relay/hibernate.go). What a period has spent is kept in a
// state file in data_dir (SPEC.md), written durably, so that a restart
// does not reset it.
package accounting

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"veil/conf"
	"veil/conf/durable"
)

// FileName is the state file's name in data_dir.
const FileName = "accounting.json"

// maxStateSize bounds the state file a relay reads (G9): a few numbers
// and a time are under 200 bytes.
const maxStateSize = 4 << 10

// formatVersion is the state file's version (SPEC.md §1).
const formatVersion = 1

// State is what one accounting period has spent so far.
type State struct {
	Version     int       `json:"version"`
	PeriodStart time.Time `json:"period_start"`
	// In and Out are the bytes the relay's links read and wrote.
	In  uint64 `json:"in"`
	Out uint64 `json:"out"`
}

// ErrState: the state file is not one this package writes.
var ErrState = errors.New("accounting: bad state file")

// Marshal encodes s as the state file holds it (SPEC.md §1).
func (s State) Marshal() []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic("accounting: internal error: " + err.Error())
	}
	return append(b, '\n')
}

// ParseState decodes a state file, refusing unknown fields, another
// version, trailing data and a missing period start.
func ParseState(b []byte) (State, error) {
	if len(b) > maxStateSize {
		return State{}, fmt.Errorf("%w: %d bytes, more than %d", ErrState, len(b), maxStateSize)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var s State
	if err := d.Decode(&s); err != nil {
		return State{}, fmt.Errorf("%w: %v", ErrState, err)
	}
	if d.More() {
		return State{}, fmt.Errorf("%w: data after the state", ErrState)
	}
	if s.Version != formatVersion {
		return State{}, fmt.Errorf("%w: version %d, want %d", ErrState, s.Version, formatVersion)
	}
	if s.PeriodStart.IsZero() {
		return State{}, fmt.Errorf("%w: no period start", ErrState)
	}
	return s, nil
}

// Accountant counts bytes against accounting_max. Its methods are safe
// for concurrent use.
type Accountant struct {
	path  string
	max   uint64
	rule  string
	start conf.AccountingStart

	mu    sync.Mutex // guards state
	state State
}

// Open returns an accountant for max bytes a period under rule, with
// periods as start says, keeping its state at dir/FileName. A state file
// of the period that holds now is carried on; one of an earlier period,
// or none, starts the period at zero. A file that cannot be read is an
// error: a relay that lost count must not spend its quota twice.
func Open(dir string, max uint64, rule string, start conf.AccountingStart, now time.Time) (*Accountant, error) {
	a := &Accountant{path: dir + string(os.PathSeparator) + FileName, max: max, rule: rule, start: start}
	cur := start.PeriodStart(now)
	a.state = State{Version: formatVersion, PeriodStart: cur}
	b, err := os.ReadFile(a.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return a, nil
	case err != nil:
		return nil, fmt.Errorf("accounting: %w", err)
	}
	s, err := ParseState(b)
	if err != nil {
		return nil, fmt.Errorf("accounting: %s: %w", a.path, err)
	}
	if s.PeriodStart.Equal(cur) {
		a.state = s
	}
	return a, nil
}

// Add counts bytes read and written.
func (a *Accountant) Add(in, out uint64) {
	a.mu.Lock()
	a.state.In += in
	a.state.Out += out
	a.mu.Unlock()
}

// Roll moves to the period that holds now, starting it at zero, and
// reports whether that is a new period.
func (a *Accountant) Roll(now time.Time) bool {
	cur := a.start.PeriodStart(now)
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur.Equal(a.state.PeriodStart) {
		return false
	}
	a.state = State{Version: formatVersion, PeriodStart: cur}
	return true
}

// Exhausted reports whether the period has spent accounting_max under the
// rule: "max" when either direction reaches it, "sum" when both together
// do, "in" or "out" when that direction does.
func (a *Accountant) Exhausted() bool {
	a.mu.Lock()
	in, out := a.state.In, a.state.Out
	a.mu.Unlock()
	return Spent(a.rule, in, out) >= a.max
}

// Spent is what counts against accounting_max under rule.
func Spent(rule string, in, out uint64) uint64 {
	switch rule {
	case conf.AccountingRuleSum:
		return in + out
	case conf.AccountingRuleIn:
		return in
	case conf.AccountingRuleOut:
		return out
	default: // max
		return max(in, out)
	}
}

// State returns what the period has spent.
func (a *Accountant) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// NextPeriod returns when the current period ends.
func (a *Accountant) NextPeriod() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.start.NextPeriod(a.state.PeriodStart)
}

// Save writes the state file durably (a crash leaves the old one or the
// new one).
func (a *Accountant) Save() error {
	s := a.State()
	if err := durable.WriteFile(a.path, s.Marshal(), 0o600); err != nil {
		return fmt.Errorf("accounting: %w", err)
	}
	return nil
}
