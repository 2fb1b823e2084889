// Package client is the client side of circuits: links to guards, circuit
// building with the hybrid handshake, streams, a pool of circuits kept per
// isolation key, and the SOCKS connector of `veil proxy`.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"veil/directory"
	"veil/onion"
	"veil/onion/keys"
	"veil/relay/link"
	"veil/relay/path"
	"veil/relay/socks"
	"veil/relay/stream"
)

const (
	// buildTimeout bounds building one circuit.
	buildTimeout = 20 * time.Second
	// dialAttempts is how many circuits a stream is tried on before the
	// SOCKS client is told it failed: an exit that refuses, or a relay
	// that vanished, costs one attempt.
	dialAttempts = 3
	// attachTimeout bounds one attempt to open a stream, as Tor's
	// CircuitStreamTimeout does, before it is tried on another circuit.
	// A hung relay on the path is found sooner (silentAfter and
	// pongTimeout); this catches an exit that answers PINGs but never
	// the BEGIN, and leaves an honest exit time to resolve and dial
	// (exitDialTimeout is 10 s).
	attachTimeout = 15 * time.Second
)

// Options configure a Client.
type Options struct {
	// View returns the directory view paths are chosen from.
	View func() *directory.View
	// Paths chooses guards, middles and exits.
	Paths *path.Selector
	// CircuitLifetime retires a circuit for new streams.
	CircuitLifetime time.Duration
	Logger          *slog.Logger
}

// Client builds and uses circuits. It is the Handler of its links.
type Client struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex // guards the fields below
	links map[keys.NodeID]*link.Link
	circs map[circKey]*Circuit
	pool  map[string]*Circuit // by isolation key
	// building has a channel per isolation key whose circuit is being
	// found or built, closed when that is done: streams of one key that
	// arrive together wait for one circuit instead of building one each.
	building map[string]chan struct{}
	spare    []*Circuit // built ahead, not yet given to a key
	// silent holds relays that stopped answering a circuit's PING, until
	// when: every circuit through one is torn down, and none is built.
	silent map[keys.NodeID]time.Time
	// leaving holds relays that said they are shutting down, until when
	// (leaving.go): no new stream goes through one.
	leaving map[keys.NodeID]time.Time
	built   int
	// wake tells Maintain that a spare was taken.
	wake chan struct{}
	// metrics are for the proxy's /metrics (metrics.go).
	metrics metrics
	// why logs why no circuit can be built (nocircuit.go).
	why whyNoCircuit
}

type circKey struct {
	l  *link.Link
	id uint32
}

// New returns a client.
func New(o Options) *Client {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CircuitLifetime == 0 {
		o.CircuitLifetime = 10 * time.Minute
	}
	return &Client{opts: o, log: o.Logger, links: map[keys.NodeID]*link.Link{},
		circs: map[circKey]*Circuit{}, pool: map[string]*Circuit{}, building: map[string]chan struct{}{},
		silent: map[keys.NodeID]time.Time{}, leaving: map[keys.NodeID]time.Time{},
		wake: make(chan struct{}, 1), metrics: newMetrics()}
}

// HandleCell takes cells from the guards.
func (cl *Client) HandleCell(l *link.Link, c *onion.Cell) {
	cl.mu.Lock()
	circ := cl.circs[circKey{l, c.CircID}]
	cl.mu.Unlock()
	if circ == nil {
		link.Release(c)
		return
	}
	switch c.Cmd {
	case onion.CellCreated:
		reply, err := c.CreatedHandshake()
		link.Release(c)
		circ.stateMu.Lock()
		ch := circ.reply
		circ.reply = nil
		circ.stateMu.Unlock()
		if err != nil || ch == nil {
			circ.fail(errors.New("client: unexpected CREATED"))
			return
		}
		ch <- reply
	case onion.CellRelay, onion.CellRelayEarly:
		circ.handleBackward(c)
	case onion.CellDestroy:
		reason, _ := c.DestroyReason()
		link.Release(c)
		circ.fail(&DestroyedError{Reason: reason})
		cl.forget(circ)
	default:
		link.Release(c)
	}
}

// LinkClosed fails every circuit through the link.
func (cl *Client) LinkClosed(l *link.Link, err error) {
	cl.mu.Lock()
	var dead []*Circuit
	for k, c := range cl.circs {
		if k.l == l {
			dead = append(dead, c)
			delete(cl.circs, k)
		}
	}
	for id, have := range cl.links {
		if have == l {
			delete(cl.links, id)
		}
	}
	cl.mu.Unlock()
	for _, c := range dead {
		c.fail(fmt.Errorf("client: link closed: %v", err))
	}
}

func (cl *Client) forget(c *Circuit) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	delete(cl.circs, circKey{c.l, c.id})
	for k, have := range cl.pool {
		if have == c {
			delete(cl.pool, k)
		}
	}
	for i, have := range cl.spare {
		if have == c {
			cl.spare = append(cl.spare[:i], cl.spare[i+1:]...)
			break
		}
	}
	c.l.ReleaseCircID(c.id)
}

// guardLink returns an open link to the guard, dialling one if needed.
// Clients present no certificate (DESIGN.md): the guard learns only an
// address.
func (cl *Client) guardLink(ctx context.Context, g directory.Entry) (*link.Link, error) {
	id := g.Descriptor.NodeID()
	cl.mu.Lock()
	l := cl.links[id]
	cl.mu.Unlock()
	if l != nil {
		select {
		case <-l.Done():
		default:
			return l, nil
		}
	}
	conn, err := dialOR(ctx, g.Descriptor, id)
	if err != nil {
		return nil, err
	}
	l, err = link.Establish(ctx, conn, link.Options{Handler: cl, Initiator: true, Logger: cl.log})
	if err != nil {
		return nil, err
	}
	cl.mu.Lock()
	cl.links[id] = l
	cl.mu.Unlock()
	return l, nil
}

// Build makes a circuit through hops, guard first, every hop after the
// guard drawn at random (path.Selector.Path).
func (cl *Client) Build(ctx context.Context, hops []directory.Entry) (*Circuit, error) {
	return cl.build(ctx, hops, false)
}

// BuildTo is Build for a circuit whose last hop was not drawn but given,
// such as a storage relay (path.Selector.PathTo): a failure to reach that
// hop does not count against the guard (relay/path/SPEC.md §1.3).
func (cl *Client) BuildTo(ctx context.Context, hops []directory.Entry) (*Circuit, error) {
	return cl.build(ctx, hops, true)
}

func (cl *Client) build(ctx context.Context, hops []directory.Entry, fixedLast bool) (*Circuit, error) {
	if len(hops) == 0 || len(hops) > onion.MaxHops {
		return nil, fmt.Errorf("client: a circuit has 1 to %d hops, not %d", onion.MaxHops, len(hops))
	}
	// A relay is passed over only for failures of its own: a caller that
	// gave up (a fetch dropping its slowest shards, say) says nothing
	// about the relays, and marking them would soon leave no guard.
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	start := time.Now()
	l, err := cl.guardLink(ctx, hops[0])
	if err != nil {
		cl.metrics.buildFailures.Inc()
		// The view may still list a guard that just died: pass it over
		// for a while so the next circuit uses the next guard.
		if parent.Err() == nil {
			cl.opts.Paths.Unreachable(hops[0].Descriptor.NodeID())
		}
		return nil, fmt.Errorf("client: guard %s: %w", hops[0].Descriptor.Nickname, err)
	}
	id, err := l.NewCircID()
	if err != nil {
		return nil, err
	}
	c := &Circuit{l: l, id: id, hops: hops, opening: map[uint16]chan beginResult{}, closedCh: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.streams = stream.NewCircuit(exitSender{c})
	cl.mu.Lock()
	cl.circs[circKey{l, id}] = c
	cl.mu.Unlock()
	for i, h := range hops {
		hopStart := time.Now()
		if err := c.extendTo(ctx, h); err != nil {
			cl.guardLeaving(hops, err)
			cl.metrics.buildFailures.Inc()
			if i > 0 && parent.Err() == nil {
				// Past the first hop the failure is the guard's to
				// answer for (blameGuard).
				cl.blameGuard(hops[0], h, err, fixedLast && i == len(hops)-1)
			}
			c.Close()
			cl.forget(c)
			return nil, &HopError{Hop: i + 1, Relay: h.Descriptor.NodeID(), err: fmt.Errorf("client: build, hop %d (%s): %w", i+1, h.Descriptor.Nickname, err)}
		}
		cl.metrics.extendSeconds.Observe(since(hopStart))
	}
	cl.metrics.buildSeconds.Observe(since(start))
	if len(hops) > 1 && cl.opts.Paths != nil {
		cl.opts.Paths.CountCircuit(hops[0].Descriptor.NodeID(), true)
	}
	c.built = time.Now()
	// The watcher lives as long as the circuit: it ends when the circuit
	// is destroyed, by anyone, and then forgets it.
	go func() {
		cl.watch(c)
		cl.forget(c)
	}()
	cl.mu.Lock()
	cl.built++
	cl.mu.Unlock()
	return c, nil
}

// DestroyedError is a circuit a relay destroyed, with the reason its
// DESTROY carried.
type DestroyedError struct{ Reason onion.DestroyReason }

func (e *DestroyedError) Error() string {
	return fmt.Sprintf("client: circuit destroyed: %v", e.Reason)
}

// blameGuard answers a circuit through guard that failed to extend to
// relay next with err (path bias, relay/path/SPEC.md §1.3).
//
// Every cell past the first hop crosses the guard, and the client cannot
// tell a relay that could not be reached from a guard that says so, or that
// drops the EXTENDED, because the next relay is not its own: DESTROY's
// reason is not authenticated, and a silence looks the same either way.
// Passing the relay over for everyone, as was done until issue 15, let a
// guard that failed every circuit to an honest middle mark honest middle
// after honest middle unreachable, until the client retried only through
// the guard's own (TestAttackSelectiveGuardFlagged). Now the failure counts
// against the guard, unless next was given rather than drawn (fixed: a
// storage relay that died says nothing of the guard, and no draw was
// steered); and a relay the guard could not reach, or did not answer for
// (blamesNextHop), is passed over only by circuits through that guard,
// each draw that lands on it counting one more failure against the guard
// (path.Selector.UnreachableVia). Below BiasDisableRate the client stops
// using the guard.
func (cl *Client) blameGuard(guard, next directory.Entry, err error, fixed bool) {
	if cl.opts.Paths == nil {
		return
	}
	g := guard.Descriptor.NodeID()
	if !fixed {
		cl.opts.Paths.CountCircuit(g, false)
	}
	if blamesNextHop(err) {
		cl.opts.Paths.UnreachableVia(g, next.Descriptor.NodeID())
	}
}

// blamesNextHop says whether a failed extend may be the fault of the relay
// extended to: no answer in time, or the hop before it saying it could not
// connect (CONNECTFAILED, sent only by the hop that tried). A circuit
// destroyed for any other reason meanwhile (an earlier hop died, and the
// guard passes DESTROYED on) says nothing about that relay.
func blamesNextHop(err error) bool {
	var d *DestroyedError
	if errors.As(err, &d) {
		return d.Reason == onion.DestroyConnectFailed
	}
	return true
}

// countStream counts a stream attempted on c (path bias): it succeeded
// if err is nil, or if the last hop answered it with an END of its own;
// a caller that gave up (ctx ended by the caller, not by a deadline) says
// nothing about the guard and is not counted.
func (cl *Client) countStream(ctx context.Context, c *Circuit, err error) {
	if cl.opts.Paths == nil || len(c.hops) < 2 || errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	var end *EndError
	ok := err == nil || errors.As(err, &end) && end.Reason != onion.EndDestroy
	cl.opts.Paths.CountStream(c.hops[0].Descriptor.NodeID(), ok)
}

// DialStore is c.DialStore with the stream counted for path bias: the
// shard circuits of share, fetch and repair (shard/transfer).
func (cl *Client) DialStore(ctx context.Context, c *Circuit) (*stream.Stream, error) {
	s, err := c.DialStore(ctx)
	cl.countStream(ctx, c, err)
	return s, err
}

// circuitFor returns the pooled circuit of an isolation key if it can
// reach dest and is young enough, or builds one.
func (cl *Client) circuitFor(ctx context.Context, key string, dest path.Destination, avoid *Circuit, failed map[keys.NodeID]bool) (*Circuit, error) {
	// One caller per key at a time: the others wait, then find its
	// circuit in the pool.
	for {
		cl.mu.Lock()
		wait, busy := cl.building[key]
		if !busy {
			done := make(chan struct{})
			cl.building[key] = done
			cl.mu.Unlock()
			defer func() {
				cl.mu.Lock()
				delete(cl.building, key)
				cl.mu.Unlock()
				close(done)
			}()
			break
		}
		cl.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	v := cl.opts.View()
	cl.mu.Lock()
	c := cl.pool[key]
	cl.mu.Unlock()
	if c != nil && c != avoid && cl.usable(c, v) && exitAllows(c, dest) {
		return c, nil
	}
	if c := cl.takeSpare(v, dest, failed); c != nil {
		cl.mu.Lock()
		cl.pool[key] = c
		cl.mu.Unlock()
		return c, nil
	}
	if v == nil {
		return nil, errors.New("client: no directory view yet")
	}
	hops, err := cl.opts.Paths.Path(v, dest)
	// A path through a relay that failed this request's last build is
	// drawn again, a few times: with two exits, one shutting down, a
	// request would otherwise fail one time in four on its three
	// attempts (path.Selector passes the relay over only once it says
	// so itself, since past the guard a failure may be the guard's).
	for range maxRedraws {
		if err != nil || !throughAny(hops, failed) {
			break
		}
		hops, err = cl.opts.Paths.Path(v, dest)
	}
	if err != nil {
		cl.noCircuit(err)
		return nil, err
	}
	c, err = cl.Build(ctx, hops)
	if err != nil {
		if ctx.Err() == nil {
			cl.noCircuit(err)
		}
		return nil, err
	}
	cl.circuitBuilt()
	cl.mu.Lock()
	cl.pool[key] = c
	cl.mu.Unlock()
	return c, nil
}

// takeSpare hands out a circuit built ahead whose exit can reach dest, so
// the stream does not wait for three handshakes.
func (cl *Client) takeSpare(v *directory.View, dest path.Destination, failed map[keys.NodeID]bool) *Circuit {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for i, c := range cl.spare {
		if cl.usableLocked(c, v) && exitAllows(c, dest) && !throughAny(c.hops, failed) {
			cl.spare = append(cl.spare[:i], cl.spare[i+1:]...)
			select {
			case cl.wake <- struct{}{}:
			default:
			}
			return c
		}
	}
	return nil
}

// spareDest is the destination spare circuits are built for: an exit that
// accepts port 443 for some address takes most streams.
var spareDest = path.Destination{Host: "spare.invalid", Port: 443}

// maintainTick is how often Maintain looks at its spares when nothing
// wakes it; spareRetry how long it waits after a failed build.
const (
	maintainTick = time.Second
	spareRetry   = 2 * time.Second
)

// Maintain keeps n circuits built ahead until ctx ends, replacing those
// that are taken, die or grow old.
func (cl *Client) Maintain(ctx context.Context, n int) {
	t := time.NewTicker(maintainTick)
	defer t.Stop()
	for {
		v := cl.opts.View()
		cl.mu.Lock()
		live := cl.spare[:0]
		for _, c := range cl.spare {
			if cl.usableLocked(c, v) {
				live = append(live, c)
			} else {
				c.Close()
			}
		}
		cl.spare = live
		need := n - len(live)
		cl.mu.Unlock()
		for ; need > 0 && ctx.Err() == nil; need-- {
			if err := cl.buildSpare(ctx); err != nil {
				cl.log.Debug("building a spare circuit", "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(spareRetry):
				}
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-cl.wake:
		case <-t.C:
		}
	}
}

func (cl *Client) buildSpare(ctx context.Context) error {
	v := cl.opts.View()
	if v == nil {
		return errors.New("client: no directory view yet")
	}
	hops, err := cl.opts.Paths.Path(v, spareDest)
	if err != nil {
		cl.noCircuit(err)
		return err
	}
	c, err := cl.Build(ctx, hops)
	if err != nil {
		if ctx.Err() == nil {
			cl.noCircuit(err)
		}
		return err
	}
	cl.circuitBuilt()
	cl.mu.Lock()
	cl.spare = append(cl.spare, c)
	cl.mu.Unlock()
	return nil
}

// Spares reports how many circuits are built ahead.
func (cl *Client) Spares() int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return len(cl.spare)
}

// usable reports whether new streams may use c: alive, not suspect (a hop
// unheard since a PING), young enough, and every relay of it still in the
// current consensus and not found silent or leaving (leaving.go).
// A relay the seeds dropped (a hung one drops out within seconds) takes
// no new stream, although circuits through it are not torn down for that
// alone: a relay missing from one consensus is usually back in the next.
func (cl *Client) usable(c *Circuit, v *directory.View) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.usableLocked(c, v)
}

func (cl *Client) usableLocked(c *Circuit, v *directory.View) bool {
	if c.Err() != nil || c.suspect.Load() || time.Since(c.built) >= cl.opts.CircuitLifetime || v == nil {
		return false
	}
	for _, h := range c.hops {
		id := h.Descriptor.NodeID()
		if _, listed := v.ByID(id); !listed || cl.silentLocked(id, time.Now()) || cl.leavingLocked(id, time.Now()) {
			return false
		}
	}
	return true
}

// silentLocked reports whether relay id was found silent lately.
func (cl *Client) silentLocked(id keys.NodeID, now time.Time) bool {
	until, ok := cl.silent[id]
	if ok && !now.Before(until) {
		delete(cl.silent, id)
		return false
	}
	return ok
}

// watch runs while c lives: it tears c down when one of its relays was
// found silent on any circuit, and checks that c itself still hears from
// its hops (Circuit.checkAlive).
func (cl *Client) watch(c *Circuit) {
	t := time.NewTicker(watchTick)
	defer t.Stop()
	for {
		select {
		case <-c.closedCh:
			return
		case now := <-t.C:
			cl.mu.Lock()
			gone := slices.ContainsFunc(c.hops, func(h directory.Entry) bool {
				return cl.silentLocked(h.Descriptor.NodeID(), now)
			})
			cl.mu.Unlock()
			if gone {
				c.CloseWith(errors.New("client: a relay of the circuit stopped answering"))
				continue
			}
			if hop, hung := c.checkAlive(now); hop >= 0 {
				cl.hopSilent(c, hop, hung)
			}
		}
	}
}

// hopSilent acts on a hop of c not heard from since a PING once it has
// been silent hungAfter (hung): new paths pass the relay over, every
// circuit through it is torn down (each by its own watcher), and when it
// is the guard, the link to it is closed, which ends every circuit on it
// at once and unblocks any send waiting for room on it.
func (cl *Client) hopSilent(c *Circuit, hop int, hung bool) {
	if !hung {
		// Suspect only: the circuit takes no new stream. Passing a
		// middle or exit over already would let a loaded machine, whose
		// honest PONGs come late, mark relay after relay until no path
		// is left (seen under two make test runs at once). A guard is
		// different: checkAlive calls it silent only when its whole
		// link has been quiet since the PING, and new circuits, the
		// directory fetched through the guard included, would wait on
		// it until hungAfter. So it is passed over for new circuits
		// (the next kept guard takes them), and nothing is torn down.
		if hop == 0 {
			h := c.hops[0]
			cl.log.Info("the guard is not answering; new circuits use the next kept guard", "guard", h.Descriptor.Nickname)
			cl.opts.Paths.Unreachable(h.Descriptor.NodeID())
		}
		return
	}
	h := c.hops[hop]
	id := h.Descriptor.NodeID()
	cl.log.Info("a relay stopped answering; routing around it", "relay", h.Descriptor.Nickname, "hop", hop+1)
	if hop == 0 {
		cl.opts.Paths.Unreachable(id)
	} else {
		// Past the guard, the guard could be the one holding the
		// answers back: pass the relay over for circuits through it
		// only, and count the draws against it (blameGuard).
		cl.opts.Paths.UnreachableVia(c.hops[0].Descriptor.NodeID(), id)
	}
	cl.mu.Lock()
	cl.silent[id] = time.Now().Add(path.UnreachableFor)
	cl.mu.Unlock()
	if hop == 0 {
		c.l.CloseWithError(fmt.Errorf("client: guard %s stopped answering", h.Descriptor.Nickname))
	}
	c.CloseWith(fmt.Errorf("client: hop %d (%s) stopped answering", hop+1, h.Descriptor.Nickname))
}

func exitAllows(c *Circuit, dest path.Destination) bool {
	pol := c.hops[len(c.hops)-1].Descriptor.ExitPolicy()
	if dest.Addr.IsValid() {
		return pol.Allows(dest.Addr, dest.Port)
	}
	return true
}

// Connect is the SOCKS connector: it opens a stream for a CONNECT on the
// circuit of the client's isolation key (its SOCKS credentials), retrying on
// another circuit when an exit refuses or a circuit breaks.
func (cl *Client) Connect(ctx context.Context, req socks.Request, cred socks.Credentials) (io.ReadWriteCloser, socks.Reply, error) {
	if req.Host != "" {
		if err := checkName(req.Host); err != nil {
			// The name itself stays out of the log (relay/socks/SPEC.md:
			// logs never name a destination).
			cl.log.Info("refused a CONNECT to a special-use name (.onion, .local, .localhost or .internal)")
			return nil, socks.Reply{Code: socks.ReplyNotAllowed}, err
		}
	}
	key := isolationKey(cred)
	dest := path.Destination{Addr: req.Addr, Host: req.Host, Port: req.Port}
	begin := onion.Begin{Addr: req.Addr, Hostname: req.Host, Port: req.Port}
	var last error
	var avoid *Circuit
	failed := map[keys.NodeID]bool{} // relays past a guard that failed a build here
	for range dialAttempts {
		c, err := cl.circuitFor(ctx, key, dest, avoid, failed)
		if errors.Is(err, path.ErrNoExit) {
			return nil, socks.Reply{Code: socks.ReplyNotAllowed}, err
		}
		if err != nil {
			last = err
			var hop *HopError
			if errors.As(err, &hop) && hop.Hop > 1 {
				failed[hop.Relay] = true
			}
			continue
		}
		actx, cancel := context.WithTimeout(ctx, attachTimeout)
		s, err := c.Dial(actx, begin)
		cancel()
		if ctx.Err() == nil {
			// An attach that timed out counts against the guard; a
			// caller that went away does not.
			cl.countStream(ctx, c, err)
		}
		if err == nil {
			return s, socks.Reply{Code: socks.ReplySucceeded, Bind: netip.AddrPortFrom(netip.IPv4Unspecified(), 0)}, nil
		}
		last = err
		cl.exitLeaving(c, err)
		var end *EndError
		if errors.As(err, &end) && !retryable(end.Reason) {
			return nil, socks.Reply{Code: end.Reason.SOCKSReply()}, err
		}
		avoid = c
		if ctx.Err() != nil {
			break
		}
	}
	code := byte(socks.ReplyGeneralFailure)
	var end *EndError
	switch {
	case errors.As(last, &end):
		code = end.Reason.SOCKSReply()
	case errors.Is(last, path.ErrNoExit):
		// No exit's policy allows the destination.
		code = socks.ReplyNotAllowed
	}
	return nil, socks.Reply{Code: code}, last
}

// retryable says whether another exit might succeed where one ended the
// stream for this reason.
func retryable(r onion.EndReason) bool {
	switch r {
	case onion.EndExitPolicy, onion.EndResolveFailed, onion.EndDestroy, onion.EndResourceLimit, onion.EndHibernating, onion.EndInternal, onion.EndMisc:
		return true
	}
	return false
}

// Close destroys every circuit and closes every link.
func (cl *Client) Close() {
	cl.mu.Lock()
	circs := slices.Collect(maps.Values(cl.circs))
	links := slices.Collect(maps.Values(cl.links))
	cl.mu.Unlock()
	for _, c := range circs {
		c.Close()
	}
	// Close every link before waiting for any, so that their drain
	// periods overlap instead of adding up.
	for _, l := range links {
		l.Close()
	}
	for _, l := range links {
		l.Wait()
	}
}

// Stats counts, for /metrics, the circuits open (built or being built),
// the streams open on them, and the circuits built since New. It names no
// circuit and no relay.
func (cl *Client) Stats() (circuits, streams, built int) {
	cl.mu.Lock()
	circs := slices.Collect(maps.Values(cl.circs))
	built = cl.built
	cl.mu.Unlock()
	// Each circuit's stream lock is taken after cl.mu is released, so
	// Stats adds no lock order.
	for _, c := range circs {
		streams += c.streams.Len()
	}
	return len(circs), streams, built
}

// maxRedraws bounds how often circuitFor draws a path again to pass over
// relays that failed the request.
const maxRedraws = 4

// throughAny reports whether hops, past the guard, go through a relay in
// ids.
func throughAny(hops []directory.Entry, ids map[keys.NodeID]bool) bool {
	if len(ids) == 0 {
		return false
	}
	for _, h := range hops[1:] {
		if ids[h.Descriptor.NodeID()] {
			return true
		}
	}
	return false
}

// HopError is a build that failed at one hop: the relay the circuit was
// being extended to (Hop 1 is the guard). Its message is the wrapped
// error's.
type HopError struct {
	Hop   int
	Relay keys.NodeID
	err   error
}

func (e *HopError) Error() string { return e.err.Error() }
func (e *HopError) Unwrap() error { return e.err }
