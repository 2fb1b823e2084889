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
	"veil/directory/daemonmetrics"
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
	// relays lists the gossip members that are relays (through members,
	// which parses each descriptor once); set by Run, tests may replace it.
	relays  func(now time.Time) []member.Known
	members member.Cache
	// prober checks OR ports in the background (probe.go); made by Run.
	prober *prober
	// metricsLn serves /metrics when metrics_addr is set, else nil;
	// metrics are what the signing loop records for it (metrics.go).
	metricsLn net.Listener
	metrics   *metrics

	// The signing loop's own fields, used by it alone (and by Run after
	// it returns):
	// lastRefused is how many relays the last signing refused, to log
	// refusals when their number changes.
	lastRefused int
	// hist is the relays' history (history.go), saved to historyFileName
	// at most every interval (lastSave) and when the seed stops.
	hist     *History
	lastSave time.Time

	mu     sync.Mutex // guards the fields below
	latest *directory.Consensus
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
		// A percentage in the config: TOML floats are easy to get subtly
		// wrong (0.98 against 98).
		GuardMinFraction: float64(cfg.GuardMinUptimePct) / 100,
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
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		if metricsLn, err = daemonmetrics.Listen(cfg.MetricsAddr, cfg.MetricsPublic); err != nil {
			ln.Close()
			return nil, fmt.Errorf("seed: %w", err)
		}
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
		hist:   NewHistory(probeGrace(cfg.ConsensusInterval.D())),
		// What /metrics serves, when metrics_addr is set.
		metricsLn: metricsLn,
		metrics:   newMetrics(),
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

// MetricsAddr returns the address /metrics is served on, or nil.
func (s *Seed) MetricsAddr() net.Addr {
	if s.metricsLn == nil {
		return nil
	}
	return s.metricsLn.Addr()
}

// closeListeners closes what New bound, when Run fails before serving.
func (s *Seed) closeListeners() {
	s.dirLn.Close()
	if s.metricsLn != nil {
		s.metricsLn.Close()
	}
}

// Run serves until ctx ends: it joins the gossip cluster, signs a consensus
// every interval and soon after membership changes, and serves it. On
// return every goroutine it started has stopped and the seed has left the
// cluster.
func (s *Seed) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	restored := s.restore()
	s.prober = newProber(s.probe, s.log, s.now, s.cfg.ConsensusInterval.D())
	s.loadHistory()

	// After a restart, join the relays the saved consensus lists, and
	// those the history last saw up, as well as the peer seeds: membership
	// comes back in one round instead of when each relay notices the seed
	// is gone.
	join := slices.Clone(s.cfg.PeerSeeds)
	if restored != nil {
		for _, e := range restored.Relays {
			join = append(join, e.Descriptor.GossipAddr.String())
		}
	}
	for _, a := range s.hist.upGossipAddrs() {
		if !slices.Contains(join, a) {
			join = append(join, a)
		}
	}
	// The node outlives ctx until it has left: a node whose context ends
	// closes at once, and Leave after that fails, so a seed stopped by
	// SIGTERM would vanish without telling anyone and log a warning.
	nodeCtx, stopNode := context.WithCancel(context.WithoutCancel(ctx))
	defer stopNode()
	node, err := s.join(nodeCtx, join)
	if err != nil {
		s.closeListeners()
		return err
	}
	if s.relays == nil {
		s.relays = func(now time.Time) []member.Known { return s.members.Relays(node, now) }
	}
	// Stop order: ctx ends the loop below, the prober and the server;
	// the history is saved once the loop, its only writer, has returned;
	// the node leaves and closes; then Run waits for the prober (whose
	// checks end with ctx) and the server.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := s.server.Serve(ctx, s.dirLn); err != nil {
			s.log.Error("directory server stopped", "err", err)
			cancel()
		}
	}()
	go func() {
		defer wg.Done()
		s.prober.run(ctx, s.targets)
	}()
	if s.metricsLn != nil {
		reg := daemonmetrics.NewRegistry("seed", s.now())
		s.metrics.register(reg)
		wg.Add(1)
		go func() {
			defer wg.Done()
			daemonmetrics.Serve(ctx, s.metricsLn, reg, s.log)
		}()
	}
	attrs := []any{"node", s.ID().Short(), "id", s.ID().String(),
		"dir", s.dirLn.Addr().String(), "gossip", node.Addr().String()}
	if s.metricsLn != nil {
		attrs = append(attrs, "metrics", s.metricsLn.Addr().String())
	}
	s.log.Info("seed running", attrs...)

	// With a saved consensus to serve, or relays to remember, wait an
	// interval before signing the first new one, so that it is not signed
	// from a membership that has not come back yet.
	first := time.Duration(0)
	if restored != nil || s.hist.Len() > 0 {
		first = s.cfg.ConsensusInterval.D()
	}
	s.loop(ctx, node.Events(), first)
	s.saveHistory()

	if err := node.Leave(leaveTimeout); err != nil {
		s.log.Warn("leaving the cluster", "err", err)
	}
	node.Close()
	stopNode()
	cancel()
	wg.Wait()
	return nil
}

// join starts the seed's membership with a Seed-role descriptor.
func (s *Seed) join(ctx context.Context, join []string) (*gossip.Node, error) {
	// Listen and advertised addresses differ behind NAT, in a container
	// or on 0.0.0.0 (conf.Advertised); the descriptor names the latter.
	gossipBind, err := netip.ParseAddrPort(s.cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("seed: gossip address: %w", err)
	}
	gossipAddr, err := conf.Advertised(gossipBind, s.cfg.GossipAdvertise)
	if err != nil {
		return nil, fmt.Errorf("seed: gossip_advertise: %w", err)
	}
	dirBound, err := netip.ParseAddrPort(s.dirLn.Addr().String())
	if err != nil {
		return nil, fmt.Errorf("seed: directory address: %w", err)
	}
	dirAddr, err := conf.Advertised(netip.AddrPortFrom(dirBound.Addr().Unmap(), dirBound.Port()), s.cfg.DirAdvertise)
	if err != nil {
		return nil, fmt.Errorf("seed: dir_advertise: %w", err)
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
		Identity: s.store.Identity(), Descriptor: d, BindAddr: s.cfg.GossipAddr, AdvertiseAddr: gossipAddr.String(),
		Join: join, Gossip: &s.cfg.Gossip, Logger: s.log, Now: s.now,
	})
}

// loop signs a consensus after first, every interval, and shortly after
// membership changes, until ctx ends.
func (s *Seed) loop(ctx context.Context, events <-chan gossip.Event, first time.Duration) {
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
			s.sign(ctx)
		case ev := <-events:
			s.log.Debug("membership", "event", ev.Type.String(), "node", ev.Name)
			if !pending {
				soon.Reset(resignDelay)
				pending = true
			}
		case <-soon.C:
			pending = false
			s.sign(ctx)
		}
	}
}

// sign decides the entries from the membership, the latest OR-port
// checks and the history, and publishes a new signed consensus. It waits
// on no network: the checks run in the background (probe.go).
func (s *Seed) sign(ctx context.Context) {
	start := time.Now()
	now := s.now()
	known := s.relays(now)

	// Running, as far as the seed can tell before the admission rules:
	// alive in gossip with a descriptor valid now (Relays), and answering
	// on its OR port. The history records exactly these as up.
	cands := make([]Candidate, 0, len(known))
	up := make(map[keys.NodeID]Sighting, len(known))
	for _, k := range known {
		id := k.Desc.NodeID()
		ok, okAt := s.prober.reachable(id, k.Desc.ORAddr, now)
		cands = append(cands, Candidate{Desc: k.Desc, ProbedOK: ok})
		if prev, dup := up[id]; ok && (!dup || newer(k.Desc, prev.Desc)) {
			up[id] = Sighting{Desc: k.Desc, OKAt: okAt}
		}
	}
	s.hist.Observe(now, up)
	for i := range cands {
		cands[i].History, _ = s.hist.Stats(cands[i].Desc.NodeID())
	}
	if interval := s.cfg.ConsensusInterval.D(); now.Sub(s.lastSave) >= interval {
		s.saveHistory()
	}

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
		s.metrics.signFailures.Inc()
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
	guards := 0
	for _, e := range entries {
		if e.Flags&directory.FlagGuard != 0 {
			guards++
		}
	}
	s.metrics.signedOne(time.Since(start), va, len(known), entries, refused, len(signed))
	s.log.Log(ctx, level, "consensus signed", "relays", len(entries), "guards", guards, "refused", len(refused),
		"members", len(known), "valid_after", va.UTC(), "took", time.Since(start).Round(time.Microsecond))
}

// targets lists the relays the prober should check: one per node ID, at
// the address of the descriptor the consensus would list (the newest).
func (s *Seed) targets() []target {
	known := s.relays(s.now())
	newest := make(map[keys.NodeID]*directory.Descriptor, len(known))
	for _, k := range known {
		id := k.Desc.NodeID()
		if d, ok := newest[id]; !ok || newer(k.Desc, d) {
			newest[id] = k.Desc
		}
	}
	out := make([]target, 0, len(newest))
	for id, d := range newest {
		out = append(out, target{id: id, addr: d.ORAddr})
	}
	return out
}

// loadHistory reads the saved history, if any, and resumes it: the time
// the seed was stopped is not counted, and what it last knew of each OR
// port seeds the prober. A file that does not parse is set aside (kept as
// history.json.bad for its operator) and the seed starts afresh: the
// history only delays Guard, it never admits anyone.
func (s *Seed) loadHistory() {
	path := filepath.Join(s.cfg.DataDir, historyFileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		s.log.Warn("reading the relay history; starting afresh", "err", err)
		return
	}
	interval := s.cfg.ConsensusInterval.D()
	h, err := ParseHistory(b, probeGrace(interval))
	if err != nil {
		s.log.Warn("refusing the saved relay history; starting afresh", "err", err, "kept_as", path+".bad")
		if err := os.Rename(path, path+".bad"); err != nil {
			s.log.Warn("setting the refused history aside", "err", err)
		}
		return
	}
	h.Resume(s.now(), probeGrace(interval))
	for id := range h.recs {
		if addr, at, ok := h.lastCheck(id); ok {
			s.prober.restore(id, addr, at)
		}
	}
	s.hist = h
	s.log.Info("relay history restored", "relays", h.Len())
}

// saveHistory writes the history to disk, durably.
func (s *Seed) saveHistory() {
	s.lastSave = s.now()
	b, err := s.hist.Marshal()
	if err == nil {
		err = durable.WriteFile(filepath.Join(s.cfg.DataDir, historyFileName), b, historyPerm)
	}
	if err != nil {
		s.log.Warn("saving the relay history", "err", err)
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
