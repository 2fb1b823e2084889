package main

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"veil/onion/keys"
	"veil/shard"
	"veil/shard/transfer"
)

// The loss simulation (issue 15 item 5, shard/SPEC.md §8.3): how likely a
// 100 MB file is lost when a fraction of the storage relays say OK to
// every PUT and keep nothing, with the real placement (shard.Place,
// shard.PlaceWeighted) over the real shard IDs of a (10, 5) share and the
// client's real record (transfer.Reliability), for
//
//   - uniform placement, as before: every shard on its primary, nothing
//     checked;
//   - weighted placement with spot checks, as transfer's upload does it:
//     shards sent a window of 8 data segments at a time (the manifest and
//     head in the last), each relay that took a shard of a window asked
//     for one of them back once the window is done unless it passed a
//     check earlier in the share (then one time in 8), and every shard of
//     the window a relay did not return placed again, with the record's
//     new weights, on a relay offered no other shard of its segment, that
//     relay checked in turn unless it passed already.
//
// The client is new each trial: its record starts empty, the worst case;
// a client that has shared before starts knowing the droppers it met.

// lossOptions are the loss simulation's sizes.
type lossOptions struct {
	storage   int       // storage relays
	fractions []float64 // fractions of them that drop
	fileSize  int64
	trials    int
	seed      uint64
}

// lossRow is one fraction's figures.
type lossRow struct {
	f                 float64
	droppers          int
	exact             float64  // P(file lost), uniform, by the hypergeometric law
	uniform, weighted estimate // P(file lost)
	uniformSegs       float64  // mean segments lost per file, uniform
	weightedSegs      float64
	checks            float64 // mean spot checks per share, weighted
	moved             float64 // mean shards stored again per share
}

// lossScenario is one trial's network: relays and which of them drop.
type lossScenario struct {
	relays   []keys.NodeID
	dropping map[keys.NodeID]bool
	link     *shard.Link
	segs     []shard.SegmentIDs
}

func newLossScenario(o lossOptions, f float64, trial int) lossScenario {
	r := rand.New(rand.NewPCG(o.seed, uint64(trial)<<16|uint64(f*1000)))
	s := lossScenario{dropping: map[keys.NodeID]bool{}}
	for i := range o.storage {
		var seed [16]byte
		binary.BigEndian.PutUint64(seed[:], r.Uint64())
		binary.BigEndian.PutUint64(seed[8:], uint64(i))
		s.relays = append(s.relays, keys.NodeID(sha256.Sum256(seed[:])))
	}
	for _, i := range r.Perm(o.storage)[:droppers(o.storage, f)] {
		s.dropping[s.relays[i]] = true
	}
	var key [32]byte
	binary.BigEndian.PutUint64(key[:], r.Uint64())
	binary.BigEndian.PutUint64(key[8:], r.Uint64())
	s.link = &shard.Link{Params: shard.DefaultParams, FileKey: key}
	s.segs = s.link.AllShardIDs(o.fileSize)
	return s
}

func droppers(storage int, f float64) int { return int(f*float64(storage) + 0.5) }

// lostSegment reports whether a segment whose shards sit on holders is
// lost: fewer than k on relays that keep them (a head: no replica).
func (s lossScenario) lostSegment(seg shard.SegmentIDs, holders []keys.NodeID) bool {
	good := 0
	for _, h := range holders {
		if !s.dropping[h] {
			good++
		}
	}
	if seg.Kind == shard.KindHead {
		return good == 0
	}
	return good < s.link.Params.K
}

// uniformLoss places every shard on its primary, as before.
func (s lossScenario) uniformLoss() (lostSegs int) {
	key := s.link.PlacementKey()
	for _, seg := range s.segs {
		pl, err := shard.Place(key, seg.IDs, s.relays)
		if err != nil {
			panic("veilsim: internal error: " + err.Error())
		}
		holders := make([]keys.NodeID, len(pl))
		for i, c := range pl {
			holders[i] = c[0]
		}
		if s.lostSegment(seg, holders) {
			lostSegs++
		}
	}
	return lostSegs
}

// simSegment is one segment of the weighted upload: who holds each shard
// and which relay was offered which shard (spent: -1, as transfer does).
type simSegment struct {
	ids     shard.SegmentIDs
	holders []keys.NodeID
	owner   map[keys.NodeID]int
}

// weightedLoss runs the weighted upload with spot checks; r draws the
// one-in-8 rechecks.
func (s lossScenario) weightedLoss(r *rand.Rand) (lostSegs, checks, moved int) {
	const (
		window      = 8 // transfer's shuffleWindow
		recheckOdds = 8 // transfer's recheckOdds
		spent       = -1
	)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	rel := transfer.NewReliability("", func() time.Time { return now })
	key := s.link.PlacementKey()
	verified := map[keys.NodeID]bool{}
	place := func(seg *simSegment) [][]keys.NodeID {
		pl, err := shard.PlaceWeighted(key, seg.ids.IDs, s.relays, rel.Weight)
		if err != nil {
			panic("veilsim: internal error: " + err.Error())
		}
		return pl
	}
	// check is a spot check of relay: what the record learns.
	check := func(relay keys.NodeID) bool {
		checks++
		if s.dropping[relay] {
			rel.Lost(relay)
			return false
		}
		rel.Kept(relay)
		verified[relay] = true
		return true
	}
	// replace stores shard i of seg again, down its weighted list.
	replace := func(seg *simSegment, i int) {
		for _, relay := range place(seg)[i] {
			if _, taken := seg.owner[relay]; taken {
				continue
			}
			seg.owner[relay] = i
			seg.holders[i] = relay
			moved++
			if verified[relay] || check(relay) {
				return
			}
			seg.owner[relay] = spent
		}
		// No relay left: the share fails (ErrNoRelayLeft); count the
		// shard as where it was, on a dropper.
	}
	var data, rest []*simSegment
	for _, ids := range s.segs {
		seg := &simSegment{ids: ids, holders: make([]keys.NodeID, len(ids.IDs)), owner: map[keys.NodeID]int{}}
		if ids.Kind == shard.KindData {
			data = append(data, seg)
		} else {
			rest = append(rest, seg)
		}
	}
	var all []*simSegment
	for start := 0; start < len(data); start += window {
		win := data[start:min(start+window, len(data))]
		if start+window >= len(data) {
			win = append(slices.Clone(win), rest...)
		}
		type held struct {
			seg *simSegment
			i   int
		}
		took := map[keys.NodeID][]held{}
		var order []keys.NodeID
		for _, seg := range win {
			for i, c := range place(seg) {
				seg.owner[c[0]] = i
				seg.holders[i] = c[0]
				if took[c[0]] == nil {
					order = append(order, c[0])
				}
				took[c[0]] = append(took[c[0]], held{seg, i})
			}
		}
		r.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		for _, relay := range order {
			due := !verified[relay] || rel.Suspect(relay) || r.IntN(recheckOdds) == 0
			if !due || check(relay) {
				continue
			}
			for _, h := range took[relay] {
				h.seg.owner[relay] = spent
				replace(h.seg, h.i)
			}
		}
		all = append(all, win...)
	}
	for _, seg := range all {
		if s.lostSegment(seg.ids, seg.holders) {
			lostSegs++
		}
	}
	return lostSegs, checks, moved
}

// simulateLoss runs every fraction's trials on all cores; the result is
// the same for a seed whatever the number of cores.
func simulateLoss(o lossOptions, logf func(string, ...any)) []lossRow {
	var rows []lossRow
	for _, f := range o.fractions {
		t := time.Now()
		type result struct{ uniform, weighted, checks, moved int }
		results := make([]result, o.trials)
		var wg sync.WaitGroup
		next := make(chan int)
		for range runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for trial := range next {
					s := newLossScenario(o, f, trial)
					u := s.uniformLoss()
					w, c, m := s.weightedLoss(rand.New(rand.NewPCG(o.seed, uint64(trial))))
					results[trial] = result{u, w, c, m}
				}
			}()
		}
		for trial := range o.trials {
			next <- trial
		}
		close(next)
		wg.Wait()
		row := lossRow{f: f, droppers: droppers(o.storage, f), exact: uniformExact(o, droppers(o.storage, f))}
		for _, res := range results {
			row.uniform.add(res.uniform > 0)
			row.weighted.add(res.weighted > 0)
			row.uniformSegs += float64(res.uniform) / float64(o.trials)
			row.weightedSegs += float64(res.weighted) / float64(o.trials)
			row.checks += float64(res.checks) / float64(o.trials)
			row.moved += float64(res.moved) / float64(o.trials)
		}
		logf("veilsim: loss, %.0f %% dropping: %d trials in %.1f s", 100*f, o.trials, time.Since(t).Seconds())
		rows = append(rows, row)
	}
	return rows
}

// reportLoss prints the loss table in Markdown.
func reportLoss(w io.Writer, o lossOptions, rows []lossRow) {
	p := shard.DefaultParams
	fmt.Fprintf(w, "%d storage relays, a %d MB file at (%d, %d): %d data segments, %d manifest segments and the head (%d replicas); %d trials a row, seed %d; ± is two standard errors.\n\n",
		o.storage, o.fileSize/1_000_000, p.K, p.M, p.Segments(o.fileSize), p.ManifestSegments(o.fileSize), p.HeadReplicas(), o.trials, o.seed)
	fmt.Fprintln(w, "| dropping relays | P(file lost): uniform placement, exact | simulated | segments lost (mean) | P(file lost): weighted + spot checks | segments lost (mean) | spot checks per share | shards stored again |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %.0f %% (%d) | %.4g %% | %s | %.2f | %s | %.2f | %.0f | %.0f |\n",
			100*r.f, r.droppers, 100*r.exact, pctE(r.uniform), r.uniformSegs, pctE(r.weighted), r.weightedSegs, r.checks, r.moved)
	}
}

// runLoss is veilsim -loss.
func runLoss(o lossOptions, dropping string, seed uint64, stdout, stderr io.Writer) int {
	o.seed = seed
	for _, f := range strings.Split(dropping, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || x < 0 || x >= 1 {
			fmt.Fprintf(stderr, "veilsim: error: -dropping %q: want fractions from 0 to below 1\n", f)
			return 2
		}
		o.fractions = append(o.fractions, x)
	}
	if o.storage < shard.DefaultParams.N() || o.trials < 1 || o.fileSize < 0 {
		fmt.Fprintf(stderr, "veilsim: error: -storage at least %d, -trials at least 1\n", shard.DefaultParams.N())
		return 2
	}
	start := time.Now()
	rows := simulateLoss(o, func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) })
	reportLoss(stdout, o, rows)
	fmt.Fprintf(stderr, "veilsim: loss simulation in %.0f s\n", time.Since(start).Seconds())
	return 0
}

// add counts one trial that hit (true) or missed.
func (e *estimate) add(hit bool) {
	e.n++
	if hit {
		e.sum++
		e.sumSq++
	}
}

// uniformExact is P(file lost) under uniform placement without the
// simulation: a segment's n primaries are n distinct relays drawn
// uniformly (the rendezvous hash is symmetric in the relays), so the
// number on droppers is hypergeometric. A data or manifest segment is
// lost with more than m of its n there, the head with all m + 1 replicas.
func uniformExact(o lossOptions, dropping int) float64 {
	p := shard.DefaultParams
	segs := p.Segments(o.fileSize) + p.ManifestSegments(o.fileSize)
	seg := hypergeomAtLeast(o.storage, dropping, p.N(), p.M+1)
	head := hypergeomAtLeast(o.storage, dropping, p.HeadReplicas(), p.HeadReplicas())
	return 1 - math.Pow(1-seg, float64(segs))*(1-head)
}

// hypergeomAtLeast is P(X ≥ at least) for X the marked among draws taken
// without replacement from total of which marked are marked.
func hypergeomAtLeast(total, marked, draws, atLeast int) float64 {
	sum := 0.0
	for x := atLeast; x <= min(draws, marked); x++ {
		sum += math.Exp(lchoose(marked, x) + lchoose(total-marked, draws-x) - lchoose(total, draws))
	}
	return sum
}

func lchoose(n, k int) float64 {
	if k < 0 || k > n {
		return math.Inf(-1)
	}
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}
