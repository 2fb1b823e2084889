package transfer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"sync"
	"time"

	"veil/conf/durable"
	"veil/onion/keys"
)

// A client's own record of how storage relays kept what it gave them
// (shard/SPEC.md §8.3). It is measured, never claimed: a relay counts as
// having lost a shard only when this client asked it for one it had
// stored there (a spot check after a PUT) and it did not return it
// intact, and as having kept one when it did. Nothing in it names a
// shard, a share or a time finer than the last loss, so the file tells
// whoever reads the disk which relays failed this client, not what it
// shared.

const (
	// ReliabilityFile is the record's name in the client's data_dir.
	ReliabilityFile = "storage-reliability.json"
	// lostPenalty is how many kept shards one lost shard outweighs: a
	// relay with no history that loses one falls to weight 1/51, so it is
	// almost never a primary again, while one lost shard among many kept
	// (a disk that failed once) still leaves it some weight.
	lostPenalty = 50
	// keptCap bounds the kept count: a relay that kept a thousand shards
	// and then starts dropping falls below a third of its weight at its
	// first loss instead of coasting on its past.
	keptCap = 20
	// lostHalfLife is how fast a loss is forgiven: a relay that lost
	// shards and was fixed (or was down during a check) regains half its
	// lost weight every two weeks.
	lostHalfLife = 14 * 24 * time.Hour
	// forgotten is an aged loss small enough to drop from the record.
	forgotten = 0.01
	// reliabilityVersion is the record's format; a file of another
	// version is ignored (and rewritten), never half-read.
	reliabilityVersion = 1
)

// relayRecord is what the client measured of one storage relay.
type relayRecord struct {
	Kept   int     `json:"kept"`              // shards returned intact when checked, at most keptCap
	Lost   float64 `json:"lost,omitempty"`    // shards not returned, aged to LostAt
	LostAt int64   `json:"lost_at,omitempty"` // Unix time Lost was last raised, to the hour
}

// reliabilityFile is the record on disk: relays by node ID as `veil
// status` writes them.
type reliabilityFile struct {
	Version int                     `json:"version"`
	Relays  map[string]*relayRecord `json:"relays"`
}

// Reliability is the client's persistent record of storage relays; safe
// for concurrent use. The zero value is not usable: use NewReliability or
// LoadReliability.
type Reliability struct {
	path string // "" keeps it in memory only
	now  func() time.Time

	mu     sync.Mutex // guards relays
	relays map[keys.NodeID]*relayRecord
}

// NewReliability returns an empty record saved to path ("" = never
// saved); now is the clock (nil = time.Now).
func NewReliability(path string, now func() time.Time) *Reliability {
	if now == nil {
		now = time.Now
	}
	return &Reliability{path: path, now: now, relays: map[keys.NodeID]*relayRecord{}}
}

// LoadReliability reads the record at path, or starts an empty one if
// there is none yet.
func LoadReliability(path string, now func() time.Time) (*Reliability, error) {
	r := NewReliability(path, now)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("transfer: reading %s: %w", path, err)
	}
	var f reliabilityFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("transfer: %s: %w (remove it to start the record afresh)", path, err)
	}
	if f.Version != reliabilityVersion {
		return r, nil
	}
	for h, rec := range f.Relays {
		id, err := keys.ParseNodeID(h)
		if err != nil || rec == nil {
			return nil, fmt.Errorf("transfer: %s: bad relay entry %q (remove the file to start the record afresh)", path, h)
		}
		rec.Kept = min(max(rec.Kept, 0), keptCap)
		if rec.Lost < 0 || math.IsNaN(rec.Lost) || math.IsInf(rec.Lost, 0) {
			rec.Lost = 0
		}
		r.relays[id] = rec
	}
	return r, nil
}

// Save writes the record durably; a record made with path "" is not saved.
func (r *Reliability) Save() error {
	if r == nil || r.path == "" {
		return nil
	}
	r.mu.Lock()
	f := reliabilityFile{Version: reliabilityVersion, Relays: map[string]*relayRecord{}}
	now := r.now()
	for id, rec := range r.relays {
		c := *rec
		if aged(rec, now) < forgotten {
			c.Lost, c.LostAt = 0, 0
		}
		f.Relays[id.String()] = &c
	}
	r.mu.Unlock()
	b, err := json.MarshalIndent(f, "", "\t")
	if err != nil {
		return fmt.Errorf("transfer: encoding the reliability record: %w", err)
	}
	if err := durable.WriteFile(r.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("transfer: saving the reliability record: %w", err)
	}
	return nil
}

// aged is rec's loss count decayed to now.
func aged(rec *relayRecord, now time.Time) float64 {
	if rec.Lost == 0 {
		return 0
	}
	age := max(now.Sub(time.Unix(rec.LostAt, 0)), 0)
	return rec.Lost * math.Exp2(-float64(age)/float64(lostHalfLife))
}

// Kept records that relay returned intact a shard this client stored.
func (r *Reliability) Kept(relay keys.NodeID) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.record(relay)
	rec.Kept = min(rec.Kept+1, keptCap)
}

// Lost records that relay did not return a shard this client stored
// there: it said it has none, returned other bytes, or could not be
// reached over several fresh paths.
func (r *Reliability) Lost(relay keys.NodeID) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.record(relay)
	now := r.now()
	// To the hour: the file need not say when this client last stored.
	at := now.Truncate(time.Hour)
	rec.Lost, rec.LostAt = aged(rec, at)+1, at.Unix()
}

func (r *Reliability) record(relay keys.NodeID) *relayRecord {
	rec := r.relays[relay]
	if rec == nil {
		rec = &relayRecord{}
		r.relays[relay] = rec
	}
	return rec
}

// Weight is relay's placement weight from this record, in (0, 1]: 1 for
// a relay that never failed this client, (kept+1)/(kept+1+50·lost) for
// one that did, lost aging with a half-life of two weeks.
func (r *Reliability) Weight(relay keys.NodeID) float64 {
	if r == nil {
		return 1
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.relays[relay]
	if rec == nil {
		return 1
	}
	lost := aged(rec, r.now())
	if lost < forgotten {
		return 1
	}
	return float64(rec.Kept+1) / (float64(rec.Kept+1) + lostPenalty*lost)
}

// Suspect reports whether relay has lost a shard of this client's
// recently enough to count: a share checks such a relay every time it
// takes a shard.
func (r *Reliability) Suspect(relay keys.NodeID) bool { return r.Weight(relay) < 1 }
