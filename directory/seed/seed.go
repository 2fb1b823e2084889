package seed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"veil/conf"
	"veil/conf/durable"
	"veil/directory"
	"veil/directory/dirserve"
	"veil/directory/gossip"
	"veil/directory/linkauth"
	"veil/directory/member"
	"veil/onion"
	"veil/onion/keys"
)

const (
	// consensusFile keeps the last signed consensus, so a restarted seed
	// serves at once what it last said.
	consensusFile = "consensus.bin"
	// consensusPerm is consensusFile's mode.
	consensusPerm = 0o600
	// probeTimeout bounds one check of a relay's OR port, retries
	// included: a TLS handshake takes milliseconds, and a port that does
	// not answer at all should hold up the signing for no longer than this.
	probeTimeout = 5 * time.Second
	// probeAttempts and probeRetryDelay: a check that fails early is tried
	// again, so a relay is not dropped from the consensus for a whole
	// interval because one connection was lost or shed (a port flooded with
	// junk may close some connections while it serves the next).
	probeAttempts   = 3
	probeRetryDelay = 250 * time.Millisecond
	// maxProbes bounds OR-port checks running at once (G9).
	maxProbes = 16
	// resignDelay gathers a burst of membership changes into one new
	// consensus, so a relay that joins or leaves shows up within a second
	// rather than at the next interval, without signing per event.
	resignDelay = time.Second
	// leaveTimeout bounds the graceful goodbye on shutdown.
	leaveTimeout = 2 * time.Second
)

// Seed is a running directory seed. Build it with New, then Run it.
type Seed struct {
	cfg    *conf.Seed
	log    *slog.Logger
	store  *keys.Store
	dirLn  net.Listener
	server *dirserve.Server
	adm    Admission
	now    func() time.Time
	// probe checks a relay's OR port; tests may replace it.
	probe func(ctx context.Context, addr string, id keys.NodeID) error
	// bw holds the relays' measured bandwidth (measure.go).
	bw *bandwidths
	// lastRefused is how many relays the last signing refused: the
	// signing loop's own, to log refusals when their number changes.
	lastRefused int

	mu     sync.Mutex // guards the fields below
	probed map[keys.NodeID]probeResult
	latest *directory.Consensus
}

type probeResult struct {
	addr netip.AddrPort
	at   time.Time
	ok   bool
}

// New opens the seed's keys and binds its directory address; nothing runs
// until Run.
func New(cfg *conf.Seed, log *slog.Logger) (*Seed, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	store, err := keys.Open(cfg.DataDir, keys.Options{})
	if err != nil {
		return nil, err
	}
	adm := Admission{
		MaxPerSlash16:  cfg.MaxRelaysPerSlash16,
		MaxPerFamily:   cfg.MaxRelaysPerFamily,
		GuardMinUptime: cfg.GuardMinUptime.D(),
	}
	if cfg.Admission == "allowlist" {
		adm.Allowlist = map[keys.NodeID]bool{}
		for _, s := range cfg.Allowlist {
			id, err := keys.ParseNodeID(s)
			if err != nil {
				return nil, fmt.Errorf("seed: allowlist: %w", err)
			}
			adm.Allowlist[id] = true
		}
	}
	bw := &bandwidths{}
	adm.Weight = bw.weight
	ln, err := net.Listen("tcp", cfg.DirAddr)
	if err != nil {
		return nil, fmt.Errorf("seed: directory address: %w", err)
	}
	return &Seed{
		bw:     bw,
		cfg:    cfg,
		log:    log,
		store:  store,
		dirLn:  ln,
		server: dirserve.New(dirserve.Options{Logger: log, RateLimitPerMinute: rateLimit(cfg.RateLimitPerMinute)}),
		adm:    adm,
		now:    time.Now,
		probe:  linkauth.Probe,
		probed: map[keys.NodeID]probeResult{},
	}, nil
}

// rateLimit turns the config's "0 = no limit" into dirserve's negative.
func rateLimit(perMinute int) int {
	if perMinute == 0 {
		return -1
	}
	return perMinute
}

// ID returns the seed's node ID, which clients pin.
func (s *Seed) ID() keys.NodeID { return s.store.Identity().ID() }

// DirAddr returns the directory address the seed serves on.
func (s *Seed) DirAddr() net.Addr { return s.dirLn.Addr() }

// Run serves until ctx ends: it joins the gossip cluster, signs a consensus
// every interval and soon after membership changes, and serves it. On
// return every goroutine it started has stopped and the seed has left the
// cluster.
func (s *Seed) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	restored := s.restore()

	// After a restart, join the relays the saved consensus lists as well as
	// the peer seeds: membership comes back in one round instead of when
	// each relay notices the seed is gone.
	join := slices.Clone(s.cfg.PeerSeeds)
	if restored != nil {
		for _, e := range restored.Relays {
			join = append(join, e.Descriptor.GossipAddr.String())
		}
	}
	node, err := s.join(ctx, join)
	if err != nil {
		s.dirLn.Close()
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.server.Serve(ctx, s.dirLn); err != nil {
			s.log.Error("directory server stopped", "err", err)
			cancel()
		}
	}()
	s.log.Info("seed running", "node", s.ID().Short(), "id", s.ID().String(),
		"dir", s.dirLn.Addr().String(), "gossip", node.Addr().String())

	// With a saved consensus to serve, wait an interval before signing
	// the first new one, so that it is not signed from a membership that
	// has not come back yet.
	first := time.Duration(0)
	if restored != nil {
		first = s.cfg.ConsensusInterval.D()
	}
	s.loop(ctx, node, first)

	if err := node.Leave(leaveTimeout); err != nil {
		s.log.Warn("leaving the cluster", "err", err)
	}
	node.Close()
	cancel()
	wg.Wait()
	return nil
}

// join starts the seed's membership with a Seed-role descriptor.
func (s *Seed) join(ctx context.Context, join []string) (*gossip.Node, error) {
	gossipAddr, err := netip.ParseAddrPort(s.cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("seed: gossip address: %w", err)
	}
	dirAddr, err := netip.ParseAddrPort(s.dirLn.Addr().String())
	if err != nil {
		return nil, fmt.Errorf("seed: directory address: %w", err)
	}
	cur, _ := s.store.OnionKeys()
	now := s.now().Truncate(time.Second)
	d := &directory.Descriptor{
		OnionCert:       cur.Cert(),
		Nickname:        s.cfg.Nickname,
		ORAddr:          dirAddr,
		GossipName:      s.ID().String(),
		GossipAddr:      gossipAddr,
		Roles:           directory.RoleSeed,
		Bandwidth:       1,
		ProtocolVersion: onion.ProtocolVersion,
		Sequence:        uint64(s.now().UnixMilli()),
		Published:       now,
		Expires:         minTime(now.Add(directory.DefaultDescriptorLifetime), cur.Cert().Expires),
	}
	if _, err := d.Sign(s.store.Identity()); err != nil {
		return nil, fmt.Errorf("seed: sign descriptor: %w", err)
	}
	return member.Join(ctx, member.Options{
		Identity: s.store.Identity(), Descriptor: d, BindAddr: s.cfg.GossipAddr,
		Join: join, Gossip: &s.cfg.Gossip, Logger: s.log, Now: s.now,
	})
}

// loop signs a consensus after first, every interval, and shortly after
// membership changes, until ctx ends.
func (s *Seed) loop(ctx context.Context, node *gossip.Node, first time.Duration) {
	interval := s.cfg.ConsensusInterval.D()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	soon := time.NewTimer(first)
	defer soon.Stop()
	pending := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.sign(ctx, node)
		case ev := <-node.Events():
			s.log.Debug("membership", "event", ev.Type.String(), "node", ev.Name)
			if !pending {
				soon.Reset(resignDelay)
				pending = true
			}
		case <-soon.C:
			pending = false
			s.sign(ctx, node)
		}
	}
}

// sign checks the relays it knows, decides the entries and publishes a
// new signed consensus.
func (s *Seed) sign(ctx context.Context, node *gossip.Node) {
	now := s.now()
	known := member.Relays(node, now)
	s.probeAll(ctx, known, now)

	s.mu.Lock()
	cands := make([]Candidate, 0, len(known))
	for _, k := range known {
		r := s.probed[k.Desc.NodeID()]
		cands = append(cands, Candidate{Desc: k.Desc, Since: k.Since, ProbedOK: r.ok && r.addr == k.Desc.ORAddr})
	}
	s.mu.Unlock()

	entries, refused := Select(cands, s.adm, now)
	for _, r := range refused {
		s.log.Debug("relay not admitted", "node", r.ID.Short(), "reason", r.Reason)
	}
	if n := len(refused); n > 0 && n != s.lastRefused {
		s.log.Info("relays refused", "count", n, "first", refused[0].ID.Short(), "reason", refused[0].Reason)
	}
	s.lastRefused = len(refused)
	va := now.Truncate(time.Second)
	c := &directory.Consensus{
		ValidAfter: va,
		FreshUntil: va.Add(s.cfg.ConsensusInterval.D()),
		ValidUntil: va.Add(directory.DefaultConsensusLifetime),
		Relays:     entries,
	}
	signed, err := c.Sign(s.store.Identity())
	if err != nil {
		s.log.Error("signing the consensus", "err", err)
		return
	}
	s.server.Publish(signed, c)
	s.mu.Lock()
	changed := s.latest == nil || len(s.latest.Relays) != len(c.Relays)
	s.latest = c
	s.mu.Unlock()
	if err := durable.WriteFile(filepath.Join(s.cfg.DataDir, consensusFile), signed, consensusPerm); err != nil {
		s.log.Warn("saving the consensus", "err", err)
	}
	// Log at info only when the network changed size, so a testnet that
	// signs every second does not flood its log.
	level := slog.LevelDebug
	if changed {
		level = slog.LevelInfo
	}
	s.log.Log(ctx, level, "consensus signed", "relays", len(entries), "refused", len(refused), "valid_after", va.UTC())
}

// probeAll checks the OR port of every relay not checked within the last
// interval (or whose address changed), a few at a time.
func (s *Seed) probeAll(ctx context.Context, known []member.Known, now time.Time) {
	interval := s.cfg.ConsensusInterval.D()
	sema := make(chan struct{}, maxProbes)
	var wg sync.WaitGroup
	for _, k := range known {
		id, addr := k.Desc.NodeID(), k.Desc.ORAddr
		s.mu.Lock()
		r, seen := s.probed[id]
		s.mu.Unlock()
		if seen && r.addr == addr && now.Sub(r.at) < interval {
			continue
		}
		wg.Add(1)
		sema <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sema }()
			err := s.probeRelay(ctx, addr.String(), id)
			if err != nil {
				s.log.Info("relay OR port check failed", "node", id.Short(), "addr", addr.String(), "err", err)
			}
			s.mu.Lock()
			s.probed[id] = probeResult{addr: addr, at: now, ok: err == nil}
			s.mu.Unlock()
		}()
	}
	wg.Wait()
	// Forget relays that are gone, so the table stays bounded by the
	// membership (G9).
	present := make(map[keys.NodeID]bool, len(known))
	for _, k := range known {
		present[k.Desc.NodeID()] = true
	}
	s.mu.Lock()
	for id := range s.probed {
		if !present[id] {
			delete(s.probed, id)
		}
	}
	s.mu.Unlock()
}

// probeRelay checks one relay's OR port within probeTimeout, in up to
// probeAttempts tries, and returns the last error.
func (s *Seed) probeRelay(ctx context.Context, addr string, id keys.NodeID) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := s.probe(ctx, addr, id)
		if err == nil || attempt == probeAttempts {
			return err
		}
		t := time.NewTimer(probeRetryDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// restore serves the last saved consensus while it is still valid, and
// returns it.
func (s *Seed) restore() *directory.Consensus {
	b, err := os.ReadFile(filepath.Join(s.cfg.DataDir, consensusFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		s.log.Warn("reading the saved consensus", "err", err)
		return nil
	}
	c, err := directory.ParseConsensus(b)
	if err == nil && c.SeedID() != s.ID() {
		err = errors.New("signed by another seed")
	}
	if err == nil {
		err = c.CheckTime(s.now())
	}
	if err != nil {
		s.log.Warn("not serving the saved consensus", "err", err)
		return nil
	}
	s.server.Publish(b, c)
	s.mu.Lock()
	s.latest = c
	s.mu.Unlock()
	s.log.Info("serving the saved consensus until a new one is signed", "relays", len(c.Relays))
	return c
}

// Latest returns the newest consensus the seed signed or restored, or nil.
func (s *Seed) Latest() *directory.Consensus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
