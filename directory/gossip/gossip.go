package gossip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Limits (DESIGN.md G9). Each bounds what a misbehaving or flooding peer
// can cost.
const (
	// MaxMembers bounds the member table, alive members and remembered
	// ones together. A new node beyond it is refused admission unless a
	// member that is not alive can be forgotten to make room.
	MaxMembers = 4096

	// MaxMembersPerAddr bounds the members at one address, any port: one
	// IPv4 address or IPv6 /64 (what one host is given). Without it one
	// host with many ports could fill the table (and a seed's list of
	// relays to check). Tor lists at most two relays per address; eight
	// leaves room for a seed and some relays on one host, or a few behind
	// one NAT. It does not apply between loopback nodes: a node bound to
	// loopback can only reach its own machine, where a testnet puts every
	// node on 127.0.0.1.
	MaxMembersPerAddr = 8

	// EventQueueSize is the capacity of the Events channel; when it is
	// full the oldest event is dropped (see Node.Events).
	EventQueueSize = 256

	fetchWorkers       = 4   // concurrent outgoing fetch requests: one dead member cannot stall the rest
	replyWorkers       = 4   // concurrent answers to fetch requests, for the same reason
	maxQueuedReplies   = 64  // answers awaiting a reply worker (each holds up to one descriptor); beyond, dropped and the requester retries
	maxFetchAttempts   = 5   // then the fetch is given up until re-armed
	maxQueuedFetches   = 64  // scheduler → workers; the scheduler never blocks on it
	maxQueuedRequests  = 256 // incoming requests awaiting the server (every member asks a newcomer at once); beyond, dropped and the requester retries
	maxQueuedResponses = 64  // incoming responses awaiting the scheduler; beyond, dropped (the fetch times out and retries)
	maxParkedRequests  = 256 // requests from nodes not yet admitted here, kept until they are or the requester gives up
	maxRejoinPerRound  = 4   // addresses re-joined per RejoinInterval
	maxMergeVerifies   = 64  // pointers verified per push/pull backstop merge

	// forgetAfter is how long a member that is not alive is remembered
	// (and re-joined) before it is dropped from the table.
	forgetAfter = 24 * time.Hour

	// delegateProtocol is this package's version in memberlist's delegate
	// protocol fields; memberlist refuses to merge with nodes whose range
	// excludes it. Bump it with the SPEC.md changelog.
	delegateProtocol = 1
)

var (
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("gossip: node closed")
	// ErrTooLarge is wrapped by errors about a pointer, descriptor or name
	// over its limit.
	ErrTooLarge = errors.New("gossip: too large")
)

// PointerInfo is what VerifyPointer extracts from a valid pointer.
type PointerInfo struct {
	// Key names the identity the pointer speaks for (e.g. the encoded
	// public key). Sequences are compared only between pointers with the
	// same Key.
	Key string
	// Seq orders a node's pointers. It must grow across restarts (a
	// timestamp works): a pointer whose Seq is below one already seen for
	// the same name and Key is refused as a replay, and one with the same
	// Seq but another Digest as equivocation.
	Seq uint64
	// Digest names the descriptor. This package only uses it to ask for
	// the descriptor and to match the answer; VerifyDescriptor must check
	// that the descriptor hashes to it.
	Digest [DigestSize]byte
}

// Config configures a Node. Name, BindAddr, Pointer, Descriptor,
// VerifyPointer and VerifyDescriptor are required.
type Config struct {
	// Name is the memberlist node name, 1..MaxNameSize bytes (the caller
	// uses the node ID string).
	Name string
	// BindAddr is the gossip address, "ip:port" (TCP and UDP). Port 0
	// picks a free port; Node.Addr reports the address in use.
	BindAddr string
	// AdvertiseAddr, if set, is the address other nodes are told to use
	// ("ip:port"; port 0 means the bound port). By default it is the bound
	// address, or one memberlist picks when binding to 0.0.0.0 or [::].
	AdvertiseAddr string
	// Join lists the gossip addresses of seeds. Start returns at once and
	// joins in the background, retrying with capped, jittered backoff
	// while none answers; later the seeds are re-joined whenever none of
	// them is alive. An entry equal to this node's own address is skipped.
	Join []string
	// SecretKey, if set, is a 16, 24 or 32-byte memberlist keyring key:
	// gossip is encrypted and nodes without the key are shut out.
	SecretKey []byte
	// Pointer is this node's signed pointer, sent as its memberlist
	// metadata: 1..MaxPointerSize bytes.
	Pointer []byte
	// Descriptor is this node's full descriptor, served to members that
	// ask: 1..MaxDescriptorSize bytes.
	Descriptor []byte
	// VerifyPointer parses and verifies a pointer seen as name's metadata
	// at addr. It is called under memberlist's lock (results are cached
	// per name, address and pointer), so it must be quick and must not
	// call back into the Node.
	VerifyPointer func(name string, addr netip.AddrPort, pointer []byte) (PointerInfo, error)
	// VerifyDescriptor checks a fetched descriptor against the pointer
	// that named it, including its digest.
	VerifyDescriptor func(p PointerInfo, descriptor []byte) error
	// Logger receives this package's logs, and memberlist's at debug
	// level. Nil means silent.
	Logger *slog.Logger
	// Timing is memberlist's clock; zero fields take LAN() values.
	Timing Timing

	// wrapTransport, if set, wraps the memberlist transport (tests and
	// benchmarks count bytes with it).
	wrapTransport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
}

func (c *Config) check() error {
	if len(c.Name) == 0 || len(c.Name) > MaxNameSize {
		return fmt.Errorf("gossip: name is %d bytes, want 1..%d: %w", len(c.Name), MaxNameSize, ErrTooLarge)
	}
	if err := checkSelf(c.Pointer, c.Descriptor); err != nil {
		return err
	}
	if c.VerifyPointer == nil || c.VerifyDescriptor == nil {
		return errors.New("gossip: VerifyPointer and VerifyDescriptor are required")
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("gossip: secret key is %d bytes, want 16, 24 or 32", len(c.SecretKey))
	}
	return nil
}

func checkSelf(pointer, descriptor []byte) error {
	if len(pointer) == 0 || len(pointer) > MaxPointerSize {
		return fmt.Errorf("gossip: pointer is %d bytes, want 1..%d: %w", len(pointer), MaxPointerSize, ErrTooLarge)
	}
	if len(descriptor) == 0 || len(descriptor) > MaxDescriptorSize {
		return fmt.Errorf("gossip: descriptor is %d bytes, want 1..%d: %w", len(descriptor), MaxDescriptorSize, ErrTooLarge)
	}
	return nil
}

// A Member is another node in the cluster, admitted with a verified
// pointer.
type Member struct {
	Name    string
	Addr    netip.AddrPort // gossip address
	Pointer PointerInfo
	// Descriptor is the verified descriptor Pointer names, or nil until it
	// has been fetched. It is shared: do not modify it.
	Descriptor []byte
	// Since is when the member last joined alive (for uptime).
	Since time.Time
}

// EventType says what happened to a member. Values are stable.
type EventType int

const (
	EventJoin       EventType = iota + 1 // admitted alive, pointer verified
	EventUpdate                          // its pointer changed
	EventDescriptor                      // a verified descriptor was stored for it
	EventLeave                           // it left gracefully
	EventDead                            // it was declared dead
)

func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventDescriptor:
		return "descriptor"
	case EventLeave:
		return "leave"
	case EventDead:
		return "dead"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// An Event reports a change to one member.
type Event struct {
	Type EventType
	Name string
}

// A Node is this process's member of the gossip cluster.
type Node struct {
	name   string
	addr   netip.AddrPort
	cfg    Config // VerifyPointer, VerifyDescriptor and Join are used after Start
	timing Timing
	log    *slog.Logger
	ml     *memberlist.Memberlist

	ctx       context.Context // ends when the node closes
	cancel    context.CancelFunc
	stopAfter func() bool // unregisters the close-on-ctx hook
	wg        sync.WaitGroup
	left      atomic.Bool // Leave was called: stop joining
	// stopping is set by Leave and Close: memberlist's complaints from
	// then on are the shutdown itself (logWriter).
	stopping *atomic.Bool

	lastMemberRejoin time.Time // owned by joinLoop: when a member last answered a re-join

	kick      chan struct{} // cap 1: wakes the fetch scheduler
	joined    chan struct{} // cap 1: wakes the server to retry parked requests
	jobs      chan fetchJob // scheduler → fetch workers
	requests  chan message  // NotifyMsg → server
	replies   chan reply    // server → reply workers
	responses chan message  // NotifyMsg → scheduler

	events  chan Event
	dropped atomic.Uint64 // events dropped because the channel was full

	lifeMu sync.Mutex // serializes Leave, UpdateSelf and Close; guards closed
	closed bool

	evMu     sync.Mutex // guards sends on events against its close
	evClosed bool

	mu       sync.Mutex // guards the following fields
	self     selfState
	peers    map[string]*peer   // by memberlist name, never this node
	verified map[string]verdict // VerifyPointer cache by name
}

type selfState struct {
	pointer    []byte
	descriptor []byte
	info       PointerInfo
}

// Start binds the gossip address, checks this node's own pointer and
// descriptor with the verify callbacks, creates the memberlist and joins
// Config.Join in the background. When ctx ends the node closes as if Close
// were called (without leaving: call Leave first for a graceful exit).
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	bind, err := netip.ParseAddrPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("gossip: bind address: %w", err)
	}
	var adv netip.AddrPort
	if cfg.AdvertiseAddr != "" {
		if adv, err = netip.ParseAddrPort(cfg.AdvertiseAddr); err != nil {
			return nil, fmt.Errorf("gossip: advertise address: %w", err)
		}
	}
	logger := cfg.Logger
	mlOut := io.Discard
	stopping := new(atomic.Bool)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	} else {
		mlOut = logWriter{l: logger, stopping: stopping}
	}
	logger = logger.With("node", cfg.Name)
	mlLogger := log.New(mlOut, "", 0)
	t := cfg.Timing.withDefaults()

	nt, err := listen(bind, mlLogger)
	if err != nil {
		return nil, err
	}
	port := nt.GetAutoBindPort()
	if adv.Port() != 0 {
		port = int(adv.Port())
	}
	advIP := ""
	if adv.IsValid() {
		advIP = adv.Addr().String()
	}
	ip, port, err := nt.FinalAdvertiseAddr(advIP, port)
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("gossip: advertise address: %w", err)
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("gossip: advertise address %v", ip)
	}
	addr := netip.AddrPortFrom(a.Unmap(), uint16(port))

	info, err := cfg.VerifyPointer(cfg.Name, addr, cfg.Pointer)
	if err == nil {
		err = cfg.VerifyDescriptor(info, cfg.Descriptor)
	}
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("gossip: own pointer and descriptor at %s: %w", addr, err)
	}

	n := &Node{
		stopping:  stopping,
		name:      cfg.Name,
		addr:      addr,
		cfg:       cfg,
		timing:    t,
		log:       logger,
		kick:      make(chan struct{}, 1),
		joined:    make(chan struct{}, 1),
		jobs:      make(chan fetchJob, maxQueuedFetches),
		requests:  make(chan message, maxQueuedRequests),
		replies:   make(chan reply, maxQueuedReplies),
		responses: make(chan message, maxQueuedResponses),
		events:    make(chan Event, EventQueueSize),
		self: selfState{
			pointer:    slices.Clone(cfg.Pointer),
			descriptor: slices.Clone(cfg.Descriptor),
			info:       info,
		},
		peers:    make(map[string]*peer),
		verified: make(map[string]verdict),
	}
	n.cfg.Join = slices.Clone(cfg.Join)
	n.cfg.SecretKey, n.cfg.Pointer, n.cfg.Descriptor = nil, nil, nil // memberlist and n.self hold copies

	var transport memberlist.NodeAwareTransport = nt
	if cfg.wrapTransport != nil {
		transport = cfg.wrapTransport(nt)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr = bind.Addr().String()
	mc.BindPort = nt.GetAutoBindPort()
	mc.AdvertiseAddr = addr.Addr().String()
	mc.AdvertisePort = int(addr.Port())
	mc.Transport = transport
	mc.Logger = mlLogger
	cb := &callbacks{n}
	mc.Delegate = cb
	mc.Events = cb
	mc.Alive = cb
	mc.Merge = cb
	// Pointers are mostly signatures, keys and digests, which do not
	// compress, and memberlist's LZW allocates fresh tables per packet: it
	// was a quarter of the CPU with 100 nodes in one process.
	mc.EnableCompression = false
	mc.DelegateProtocolMin = delegateProtocol
	mc.DelegateProtocolMax = delegateProtocol
	mc.DelegateProtocolVersion = delegateProtocol
	if len(cfg.SecretKey) > 0 {
		mc.SecretKey = slices.Clone(cfg.SecretKey)
	}
	mc.ProbeInterval = t.ProbeInterval
	mc.ProbeTimeout = t.ProbeTimeout
	mc.SuspicionMult = t.SuspicionMult
	mc.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	mc.GossipInterval = t.GossipInterval
	// Push/pull runs on this package's timer (pushpull.go), which
	// stretches it linearly with the cluster; 0 turns memberlist's off.
	mc.PushPullInterval = 0
	mc.TCPTimeout = t.TCPTimeout
	mc.GossipToTheDeadTime = t.GossipToTheDeadTime
	mc.DeadNodeReclaimTime = t.DeadNodeReclaimTime

	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = nt.Shutdown() // Create does not always shut down a transport it was given
		return nil, fmt.Errorf("gossip: memberlist: %w", err)
	}
	n.ml = ml
	n.ctx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))

	n.wg.Add(4 + fetchWorkers + replyWorkers)
	go n.joinLoop()
	go n.pushPullLoop()
	go n.fetchLoop()
	go n.serveLoop()
	for range fetchWorkers {
		go n.fetchWorker()
	}
	for range replyWorkers {
		go n.replyWorker()
	}
	// Under lifeMu: with ctx already done, AfterFunc runs Close at once on
	// another goroutine, and Close reads stopAfter (a race the race
	// detector saw when a test ended during a seed's start).
	n.lifeMu.Lock()
	n.stopAfter = context.AfterFunc(ctx, func() { _ = n.Close() })
	n.lifeMu.Unlock()
	n.log.Debug("gossip: started", "addr", addr)
	return n, nil
}

// listen binds the memberlist transport. With port 0 the kernel picks a
// TCP port that may be taken for UDP, so it retries a few times, as
// memberlist does.
func listen(bind netip.AddrPort, logger *log.Logger) (*memberlist.NetTransport, error) {
	nc := &memberlist.NetTransportConfig{
		BindAddrs: []string{bind.Addr().String()},
		BindPort:  int(bind.Port()),
		Logger:    logger,
	}
	tries := 1
	if bind.Port() == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		if nt, err = memberlist.NewNetTransport(nc); err == nil {
			return nt, nil
		}
	}
	return nil, fmt.Errorf("gossip: listen on %s: %w", bind, err)
}

// Addr returns the gossip address other nodes use for this one.
func (n *Node) Addr() netip.AddrPort { return n.addr }

// Name returns this node's memberlist name.
func (n *Node) Name() string { return n.name }

// Members returns the alive members other than this node, sorted by name,
// each with its verified pointer and, once fetched, verified descriptor.
func (n *Node) Members() []Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Member, 0, len(n.peers))
	for _, p := range n.peers {
		if !p.alive {
			continue
		}
		out = append(out, Member{Name: p.name, Addr: p.addr, Pointer: p.info, Descriptor: p.desc, Since: p.since})
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Events returns membership events. The channel holds EventQueueSize
// events; memberlist is never blocked on it: when it is full the oldest
// event is dropped and counted (DroppedEvents), so a consumer that falls
// behind should re-read Members. It is closed by Close.
func (n *Node) Events() <-chan Event { return n.events }

// DroppedEvents returns how many events were dropped because the Events
// channel was full.
func (n *Node) DroppedEvents() uint64 { return n.dropped.Load() }

// UpdateSelf republishes this node: a new pointer (with a higher sequence)
// and the descriptor it names. Both are checked with the verify callbacks
// first. The descriptor is served at once; the pointer spreads with
// memberlist's next gossip (UpdateSelf waits up to Timing.TCPTimeout for
// the first broadcast, then returns anyway).
func (n *Node) UpdateSelf(pointer, descriptor []byte) error {
	if err := checkSelf(pointer, descriptor); err != nil {
		return err
	}
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	if n.closed {
		return ErrClosed
	}
	if n.left.Load() {
		// memberlist ignores a left node's own alive messages.
		return errors.New("gossip: update self: the node has left")
	}
	info, err := n.cfg.VerifyPointer(n.name, n.addr, pointer)
	if err == nil {
		err = n.cfg.VerifyDescriptor(info, descriptor)
	}
	if err != nil {
		return fmt.Errorf("gossip: update self: %w", err)
	}
	n.mu.Lock()
	n.self = selfState{pointer: slices.Clone(pointer), descriptor: slices.Clone(descriptor), info: info}
	n.mu.Unlock()
	if err := n.ml.UpdateNode(n.timing.TCPTimeout); err != nil {
		// The update is applied and queued; it goes out with the next
		// gossip or push/pull.
		n.log.Debug("gossip: update not broadcast yet", "err", err)
	}
	return nil
}

// Leave announces that this node is leaving, so that the others learn at
// once rather than after the suspicion timeout, and stops joining. It waits
// up to timeout for the announcement to go out; one that did not is no
// error (see below), only ErrClosed is. The node keeps answering until
// Close.
//
// memberlist's leave message does not reach its event callbacks as such,
// so Leave first sends every alive member a leaving notice (one UDP user
// message each, SPEC.md §2); a member that gets it reports EventLeave, one
// that misses it EventDead, at the same moment. Nothing orders the notice
// before the leave message at the receiver (which may hear of the leave
// from a third member, or in a push/pull), so a notice that comes shortly
// after the member was reported EventDead is reported as EventLeave then.
func (n *Node) Leave(timeout time.Duration) error {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	if n.closed {
		return ErrClosed // memberlist panics on Leave after Shutdown
	}
	n.left.Store(true)
	n.stopping.Store(true)
	n.mu.Lock()
	notice := message{Type: msgLeaving, Digest: n.self.info.Digest, Name: n.name}
	to := make([]*memberlist.Node, 0, len(n.peers))
	for _, p := range n.peers {
		if p.alive {
			to = append(to, mlNode(p.name, p.addr))
		}
	}
	n.mu.Unlock()
	if b, err := notice.marshal(); err == nil {
		for _, nd := range to {
			if err := n.ml.SendBestEffort(nd, b); err != nil {
				n.log.Debug("gossip: leaving notice not sent", "member", nd.Name, "err", err)
			}
		}
	}
	if err := n.ml.Leave(timeout); err != nil {
		// memberlist's only error here: its own dead-self broadcast did
		// not go out within timeout, as when the members it knows alive
		// are stopping too (a whole network shut down at once). Every one
		// of them was sent the leaving notice above, so a member that is
		// up learns of the leave either way, and the rest by failure
		// detection: nothing an operator should be warned about on a
		// normal shutdown.
		n.log.Debug("gossip: leave broadcast not confirmed in time", "timeout", timeout, "err", err)
	}
	return nil
}

// Close stops every goroutine this package started and shuts memberlist
// down, without a leave message (others will see this node fail). It waits
// for an in-flight join or fetch to give up, at most about
// Timing.TCPTimeout. Close is idempotent.
func (n *Node) Close() error {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	n.stopping.Store(true)
	n.stopAfter()
	n.cancel()
	err := n.ml.Shutdown()
	n.wg.Wait()
	n.evMu.Lock()
	n.evClosed = true
	close(n.events)
	n.evMu.Unlock()
	if err != nil {
		return fmt.Errorf("gossip: shutdown: %w", err)
	}
	return nil
}

// emit queues ev without blocking, dropping the oldest event when full.
func (n *Node) emit(ev Event) {
	n.evMu.Lock()
	defer n.evMu.Unlock()
	if n.evClosed {
		return
	}
	for {
		select {
		case n.events <- ev:
			return
		default:
		}
		select {
		case <-n.events:
			n.dropped.Add(1)
		default:
		}
	}
}

// wake does a non-blocking send on a capacity-1 signal channel.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// sleep waits d or until the node closes; it reports whether d passed.
func (n *Node) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.ctx.Done():
		return false
	}
}

// mlNode builds the memberlist address of a member.
func mlNode(name string, addr netip.AddrPort) *memberlist.Node {
	return &memberlist.Node{Name: name, Addr: net.IP(addr.Addr().AsSlice()), Port: addr.Port()}
}

// nodeAddr returns a memberlist node's address.
func nodeAddr(nd *memberlist.Node) (netip.AddrPort, bool) {
	a, ok := netip.AddrFromSlice(nd.Addr)
	if !ok || nd.Port == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), nd.Port), true
}

// logWriter routes memberlist's log lines ("[LEVEL] memberlist: ...") into
// slog, at the level the prefix names and without the prefix, so a line
// carries one level. memberlist's INFO lines are about other members (a
// suspect, a node marked failed: one line at every node for each failure
// anywhere in the network), which an operator's info log does not want, so
// they go to debug with DEBUG; WARN and ERR keep their level (but for the
// routine churn of routineMemberlist), until the
// node leaves or closes: a probe in flight then fails on its closed socket
// ("use of closed network connection", "UDP probes failed") and memberlist
// says so at ERR and WARN, which is a normal shutdown, not a fault, and
// goes to debug too.
type logWriter struct {
	l        *slog.Logger
	stopping *atomic.Bool // nil: never
}

func (w logWriter) Write(p []byte) (int, error) {
	level, msg := memberlistLevel(string(p))
	if w.stopping != nil && w.stopping.Load() {
		level = min(level, slog.LevelDebug)
	}
	w.l.Log(context.Background(), level, msg, "src", "memberlist")
	return len(p), nil
}

// memberlistLevel takes apart one memberlist log line: its slog level and
// the message without the "[LEVEL] memberlist: " prefix. A line without a
// known prefix is logged at debug, whole.
func memberlistLevel(line string) (slog.Level, string) {
	msg := strings.TrimSpace(line)
	level := slog.LevelDebug
	if rest, ok := strings.CutPrefix(msg, "["); ok {
		if tag, text, ok := strings.Cut(rest, "]"); ok {
			switch tag {
			case "DEBUG", "INFO":
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			default:
				return slog.LevelDebug, msg
			}
			msg = strings.TrimSpace(text)
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	if level > slog.LevelDebug {
		for _, r := range routineMemberlist {
			if strings.HasPrefix(msg, r.prefix) {
				level = min(level, r.level)
				break
			}
		}
	}
	return level, msg
}

// routineMemberlist are memberlist WARN and ERR messages about the churn
// of membership that failure detection answers by itself: this node
// refuting a suspicion of it under load, a probe, gossip or push/pull
// with a peer that is slow or gone. At memberlist's level they put
// warnings and errors in the log of a healthy node (a loaded two-core
// testnet logs several a minute), so they go where memberlist's INFO
// lines go. Its TCP-but-not-UDP message may mean a firewall that drops
// UDP, so it stays visible at info; on a loaded machine it comes from
// slow probes too. Everything else (a rejected or conflicting node,
// undecodable packets, a full queue) keeps memberlist's level.
var routineMemberlist = []struct {
	prefix string
	level  slog.Level
}{
	{"Refuting a suspect message", slog.LevelDebug},
	{"Refuting a dead message", slog.LevelDebug},
	{"Failed fallback TCP ping", slog.LevelDebug},
	{"Failed to send UDP ping", slog.LevelDebug},
	{"Failed to send UDP compound ping", slog.LevelDebug},
	{"Failed to send indirect", slog.LevelDebug},
	{"Failed to send gossip to", slog.LevelDebug},
	{"Failed to send ack", slog.LevelDebug},
	{"Failed to send nack", slog.LevelDebug},
	{"Failed to forward ack", slog.LevelDebug},
	{"Push/Pull with", slog.LevelDebug},
	{"Failed to push local state", slog.LevelDebug},
	{"Failed to read remote state", slog.LevelDebug},
	{"Failed to receive user message", slog.LevelDebug},
	{"failed to receive:", slog.LevelDebug},
	{"Was able to connect to", slog.LevelInfo},
}
