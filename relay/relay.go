package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"veil/conf"
	"veil/directory"
	"veil/directory/daemonmetrics"
	"veil/directory/dircache"
	"veil/directory/gossip"
	"veil/directory/linkauth"
	"veil/directory/member"
	"veil/onion"
	"veil/onion/keys"
	"veil/relay/internal/ratelimit"
	shardstore "veil/shard/store"
)

const (
	// republishCheck is how often the relay looks at its onion key and
	// descriptor age. Rotation and republication are hours apart, so a
	// minute is prompt enough and costs nothing.
	republishCheck = time.Minute
	// leaveTimeout bounds the graceful goodbye on shutdown.
	leaveTimeout = 2 * time.Second
)

// Relay is a running relay. Build it with New, then Run it.
type Relay struct {
	cfg        *conf.Relay
	log        *slog.Logger
	store      *keys.Store
	orLn       net.Listener
	orAddr     netip.AddrPort // published; the listener may be bound elsewhere (listen.go)
	orAddrV6   netip.AddrPort // published IPv6 OR address beside an IPv4 orAddr, or zero
	gossipBind netip.AddrPort // where gossip listens
	gossipAddr netip.AddrPort // what gossip and the descriptor tell others
	pub        publisher
	now        func() time.Time
	handshakes *onion.RelayIdentity
	// shards is the shard store when the relay offers storage.
	shards *shardstore.Store
	// metricsLn serves /metrics when metrics_addr is set.
	metricsLn net.Listener
	// creates holds the per-peer CREATE limits (createlimits.go).
	creates createLimits
	// dirCache mirrors and serves the seeds' consensus when the config
	// pins seeds for it (dir_cache_seed), else nil (dirstream.go).
	dirCache *dircache.Cache
	// tamperForward and injectBackward are test hooks: see engine.tamper
	// and engine.inject.
	tamperForward  func(*onion.Cell)
	injectBackward func(forwarded int) []onion.RelayCell
	// refuseExtend, a test hook, makes the relay play a guard that
	// destroys every circuit it is asked to extend to a relay for which
	// it returns true, with CONNECTFAILED as if that relay were down.
	refuseExtend func(to keys.NodeID) bool

	// limiter caps and counts what every link reads and writes
	// (relay_bandwidth_rate; limits.go).
	limiter *ratelimit.Limiter
	// hib hibernates the relay once accounting_max is spent
	// (hibernate.go).
	hib *hibernation
	// eng is the running engine, for Reload; nil before Run.
	eng atomic.Pointer[engine]
	// republishNow wakes the republication loop after a reload.
	republishNow chan struct{}
	// drainReq is closed by Drain (drain.go), once; leaveOnce makes the
	// goodbye to the cluster happen once, in a drain or at the end.
	drainReq  chan struct{}
	drainOnce sync.Once
	leaveOnce sync.Once

	viewMu   sync.Mutex // guards the fields below
	node     *gossip.Node
	view     map[keys.NodeID]netip.AddrPort
	viewV6   map[keys.NodeID]netip.AddrPort // IPv6 OR addresses beside view's IPv4 ones
	viewTime time.Time
}

// viewTTL is how long the relay trusts its list of known relays before it
// rebuilds it from gossip; EXTENDs between rebuilds share one list. A miss
// rebuilds it sooner, at most every viewMissTTL.
const (
	viewTTL     = time.Second
	viewMissTTL = 100 * time.Millisecond
)

// New opens the relay's keys (creating them on first start) and binds its
// OR and gossip addresses; nothing runs until Run.
func New(cfg *conf.Relay, log *slog.Logger) (*Relay, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	store, err := keys.Open(cfg.DataDir, keys.Options{RotateEvery: cfg.OnionKeyRotation.D(), Grace: cfg.OnionKeyGrace.D()})
	if err != nil {
		return nil, err
	}
	port, err := listenOR(cfg)
	if err != nil {
		return nil, err
	}
	ln := port.ln
	gossipBind, err := resolveGossipAddr(cfg.GossipAddr)
	if err != nil {
		ln.Close()
		return nil, err
	}
	gossipAddr, err := conf.Advertised(gossipBind, cfg.GossipAdvertise)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("relay: gossip_advertise: %w", err)
	}
	r := &Relay{
		cfg: cfg, log: log, store: store, orLn: ln, orAddr: port.addr, orAddrV6: port.addrV6,
		gossipBind: gossipBind, gossipAddr: gossipAddr,
		pub: publisher{cfg: cfg, store: store, orAddrV6: port.addrV6}, now: time.Now, creates: newCreateLimits(cfg.MaxCircuits),
		republishNow: make(chan struct{}, 1), drainReq: make(chan struct{}),
	}
	r.limiter = ratelimit.New(uint64(cfg.RelayBandwidthRate), uint64(cfg.RelayBurst()))
	if r.hib, err = newHibernation(cfg, r.now()); err != nil {
		ln.Close()
		return nil, err
	}
	if cfg.Storage {
		if r.shards, err = shardstore.Open(filepath.Join(cfg.DataDir, "shards"), shardstore.Options{Quota: int64(cfg.StorageQuota), Logger: log}); err != nil {
			ln.Close()
			return nil, fmt.Errorf("relay: shard store: %w", err)
		}
	}
	if r.dirCache, err = newDirCache(cfg, log); err != nil {
		ln.Close()
		return nil, err
	}
	if cfg.MetricsAddr != "" {
		if r.metricsLn, err = daemonmetrics.Listen(cfg.MetricsAddr, cfg.MetricsPublic); err != nil {
			ln.Close()
			return nil, fmt.Errorf("relay: %w", err)
		}
	}
	r.handshakes = &onion.RelayIdentity{
		ID: r.ID(),
		OnionKey: func(pub [32]byte) (onion.OnionPrivateKey, bool) {
			k, ok := store.FindOnionKey(pub)
			if !ok {
				return nil, false
			}
			return k, true
		},
		Replay: onion.NewReplayCache(0),
	}
	return r, nil
}

// resolveGossipAddr turns port 0 into a free port now, because the
// descriptor and pointer must name the address before gossip starts.
func resolveGossipAddr(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return ap, fmt.Errorf("relay: gossip_addr: %w", err)
	}
	if ap.Port() != 0 {
		return ap, nil
	}
	// memberlist binds TCP and UDP on the same port; a free TCP port is
	// almost always free for UDP too, and Start fails loudly if not.
	ln, err := net.Listen("tcp", s)
	if err != nil {
		return ap, fmt.Errorf("relay: gossip_addr: %w", err)
	}
	defer ln.Close()
	return netip.ParseAddrPort(ln.Addr().String())
}

// ID returns the relay's node ID.
func (r *Relay) ID() keys.NodeID { return r.store.Identity().ID() }

// ORAddr returns the address the relay accepts links on.
func (r *Relay) ORAddr() netip.AddrPort { return r.orAddr }

// Run serves until ctx ends, or until a drain asked for by Drain is over:
// the OR port, membership and republication. On return every goroutine it
// started has stopped and the relay has left the cluster, so seeds drop it
// at once.
func (r *Relay) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tlsCfg, err := linkauth.ServerConfig(r.store.Identity(), linkauth.AnonymousClients)
	if err != nil {
		r.closeListeners()
		return err
	}
	eng := newEngine(ctx, r)
	eng.links.limit = r.limiter
	if eng.exiter != nil {
		eng.exiter.own = r.ownAddrs()
		eng.exiter.setPolicy(r.cfg.Policy())
	}
	r.eng.Store(eng)
	or := newORListener(r.orLn, tlsCfg, eng, r.log)
	d, err := r.pub.build(r.now(), r.orAddr, r.gossipAddr)
	if err != nil {
		r.closeListeners()
		return err
	}
	node, err := member.Join(ctx, member.Options{
		Identity: r.store.Identity(), Descriptor: d, BindAddr: r.gossipBind.String(), AdvertiseAddr: r.gossipAddr.String(),
		Join: r.cfg.Seeds, Gossip: &r.cfg.Gossip, Logger: r.log, Now: r.now,
	})
	if err != nil {
		r.closeListeners()
		return err
	}
	r.viewMu.Lock()
	r.node = node
	r.viewMu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		or.serve(ctx)
	}()
	go func() {
		defer wg.Done()
		eng.governMemory()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		eng.reapUnused()
	}()
	if r.shards != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.shards.Run(ctx)
		}()
	}
	if r.metricsLn != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			eng.serveMetrics(ctx, r.metricsLn, r.now())
		}()
	}
	if r.dirCache != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.dirCache.Run(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.account(ctx)
	}()
	started := r.now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		eng.heartbeat(ctx, started, heartbeatEvery)
	}()
	attrs := []any{"node", r.ID().Short(), "id", r.ID().String(),
		"or", r.orAddr.String(), "gossip", node.Addr().String(), "exit", r.cfg.Exit, "storage", r.cfg.Storage}
	if r.metricsLn != nil {
		attrs = append(attrs, "metrics", r.metricsLn.Addr().String())
	}
	// What is published, then what is bound where it differs (behind NAT,
	// in a container, on 0.0.0.0), so an operator sees both.
	if r.orAddrV6.IsValid() {
		attrs = append(attrs, "or_v6", r.orAddrV6.String())
	}
	if bound := r.orLn.Addr().String(); bound != r.orAddr.String() || r.orAddrV6.IsValid() {
		attrs = append(attrs, "or_listen", listenAddrs(r.orLn))
	}
	if r.gossipBind != r.gossipAddr {
		attrs = append(attrs, "gossip_listen", r.gossipBind.String())
	}
	r.log.Info("relay running", attrs...)

	node = r.membership(ctx, node, d)
	if ctx.Err() == nil && r.draining() {
		r.drain(ctx, eng, node)
	}

	r.leave(node)
	cancel()
	wg.Wait()
	eng.links.closeAll()
	eng.wg.Wait()
	return nil
}

// closeListeners closes what New bound, when Run fails before serving.
func (r *Relay) closeListeners() {
	r.orLn.Close()
	if r.metricsLn != nil {
		r.metricsLn.Close()
	}
}

// MetricsAddr returns the address /metrics is served on, or nil.
func (r *Relay) MetricsAddr() net.Addr {
	if r.metricsLn == nil {
		return nil
	}
	return r.metricsLn.Addr()
}

// knownRelay returns the OR address of a relay this relay knows from
// gossip, where every descriptor was verified. A relay extends circuits
// only to relays it knows, never to an arbitrary address a client names.
func (r *Relay) knownRelay(id keys.NodeID) (netip.AddrPort, bool) {
	r.viewMu.Lock()
	defer r.viewMu.Unlock()
	now := r.now()
	_, known := r.view[id]
	if r.node != nil && (now.Sub(r.viewTime) > viewTTL || !known && now.Sub(r.viewTime) > viewMissTTL) {
		r.view = map[keys.NodeID]netip.AddrPort{}
		r.viewV6 = map[keys.NodeID]netip.AddrPort{}
		for _, k := range member.Relays(r.node, now) {
			r.view[k.Desc.NodeID()] = k.Desc.ORAddr
			if k.Desc.ORAddrV6.IsValid() {
				r.viewV6[k.Desc.NodeID()] = k.Desc.ORAddrV6
			}
		}
		r.viewTime = now
	}
	a, ok := r.view[id]
	return a, ok
}

// knownAt reports whether id is a relay this relay knows (knownRelay) at
// addr, either of its OR addresses: a client names the one to extend to.
func (r *Relay) knownAt(id keys.NodeID, addr netip.AddrPort) bool {
	a, ok := r.knownRelay(id)
	if !ok {
		return false
	}
	r.viewMu.Lock()
	defer r.viewMu.Unlock()
	return a == addr || r.viewV6[id] == addr && addr.IsValid()
}

// republish rotates the onion key when due and announces a new descriptor
// when the current one is half-way to expiry or names an old onion key.
func (r *Relay) republish(ctx context.Context, node *gossip.Node, d *directory.Descriptor) {
	tick := time.NewTicker(republishCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.drainReq:
			return
		case <-tick.C:
		case <-r.republishNow:
		case <-r.hib.sleep:
			return // membership leaves the cluster
		}
		if rotated, err := r.store.RotateIfDue(); err != nil {
			r.log.Error("rotating the onion key", "err", err)
		} else if rotated {
			r.log.Info("onion key rotated")
		}
		if !r.pub.due(d, r.now()) {
			continue
		}
		nd, err := r.pub.build(r.now(), r.orAddr, r.gossipAddr)
		if err != nil {
			r.log.Error("building a new descriptor", "err", err)
			continue
		}
		if err := member.Announce(node, r.store.Identity(), nd); err != nil {
			r.log.Error("announcing the new descriptor", "err", err)
			continue
		}
		d = nd
		r.log.Info("descriptor republished", "sequence", d.Sequence)
	}
}
