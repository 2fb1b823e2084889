package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"veil/conf"
	"veil/conf/exitpolicy"
	"veil/directory"
	"veil/directory/dirclient"
	"veil/directory/dirserve"
	"veil/directory/seed"
	"veil/onion"
	"veil/onion/keys"
)

// freeAddr returns a loopback address whose port was free a moment ago
// (for seeds, whose gossip address must be fixed before they start).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// testNetwork runs seeds and relays in this process on 127.0.0.1.
type testNetwork struct {
	t      testing.TB
	dir    string
	wg     sync.WaitGroup
	seeds  []*seed.Seed
	gossip []string // seeds' gossip addresses
	relays map[string]*runningRelay
	// networkKey, if set, is given to the relays started next.
	networkKey string
	// maxMemory is the relays' max_memory.
	maxMemory conf.Size
	// inject, if set, is the injectBackward hook of the relays started
	// next: they play a relay that speaks for streams it does not end.
	inject func(forwarded int) []onion.RelayCell
	// refuseExtend, if set, is the refuseExtend hook of the relays
	// started next: they destroy circuits extended to relays it names.
	refuseExtend func(to keys.NodeID) bool
	// relayEdit, if set, changes the config of the relays started next.
	relayEdit func(*conf.Relay)
	// unusedAfter, if set, is how long the relays started next leave an
	// unused circuit (createLimits.unusedAfter).
	unusedAfter time.Duration
	// log, if set, is the logger of the relays started next (nil: silent).
	log *slog.Logger
}

type runningRelay struct {
	r      *Relay
	cancel context.CancelFunc
	done   chan struct{}
}

func newTestNetwork(t testing.TB, seeds int) *testNetwork {
	return newTestNetworkWith(t, seeds, nil)
}

// newTestNetworkWith is newTestNetwork with edit applied to each seed's
// configuration (nil: none).
func newTestNetworkWith(t testing.TB, seeds int, edit func(*conf.Seed)) *testNetwork {
	n := &testNetwork{t: t, dir: t.TempDir(), relays: map[string]*runningRelay{}, maxMemory: conf.DefaultRelay().MaxMemory}
	// Cleanups run last-registered first: every cancel below runs before
	// this wait.
	t.Cleanup(n.wg.Wait)
	for i := 0; i < seeds; i++ {
		n.gossip = append(n.gossip, freeAddr(t))
	}
	for i := 0; i < seeds; i++ {
		cfg := conf.DefaultSeed()
		cfg.DataDir = filepath.Join(n.dir, fmt.Sprint("seed", i))
		cfg.Nickname = fmt.Sprint("seed", i)
		cfg.GossipAddr = n.gossip[i]
		cfg.DirAddr = "127.0.0.1:0"
		cfg.PeerSeeds = append(append([]string{}, n.gossip[:i]...), n.gossip[i+1:]...)
		cfg.ConsensusInterval = conf.Duration(time.Second)
		cfg.GuardMinUptime = 0
		cfg.MaxRelaysPerSlash16 = 0
		cfg.RateLimitPerMinute = 0
		cfg.GossipTiming = conf.GossipLocal
		if edit != nil {
			edit(&cfg)
		}
		s, err := seed.New(&cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		n.seeds = append(n.seeds, s)
		ctx, cancel := context.WithCancel(context.Background())
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			// A seed that stops early (its gossip port taken between
			// freeAddr and its bind, say) would otherwise show only as
			// "connection refused" from its directory port.
			if err := s.Run(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("seed %d stopped: %v", i, err)
			}
		}()
		t.Cleanup(cancel)
	}
	return n
}

func (n *testNetwork) startRelay(name string, exit bool) *Relay {
	return n.startRelayWith(name, exit, nil)
}

// startRelayWith starts a relay whose forwarded cells pass through tamper
// first (nil: an honest relay).
func (n *testNetwork) startRelayWith(name string, exit bool, tamper func(*onion.Cell)) *Relay {
	n.t.Helper()
	cfg := conf.DefaultRelay()
	cfg.DataDir = filepath.Join(n.dir, name)
	cfg.Nickname = name
	cfg.ORAddr = "127.0.0.1:0"
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.Seeds = n.gossip
	cfg.GossipTiming = conf.GossipLocal
	cfg.NetworkKey = n.networkKey
	cfg.MaxMemory = n.maxMemory
	cfg.MetricsAddr = "127.0.0.1:0"
	if n.relayEdit != nil {
		n.relayEdit(&cfg)
	}
	if exit {
		cfg.Exit = true
		// Port 9 is refused so that a test can watch an exit refuse.
		cfg.ExitPolicy = []string{"reject 127.0.0.1:9", "accept 127.0.0.1:*", "reject *:*"}
		cfg.Storage = true
	}
	r, err := New(&cfg, n.log)
	if err != nil {
		n.t.Fatal(err)
	}
	r.tamperForward = tamper
	r.injectBackward = n.inject
	r.refuseExtend = n.refuseExtend
	if n.unusedAfter != 0 {
		r.creates.unusedAfter = n.unusedAfter
	}
	ctx, cancel := context.WithCancel(context.Background())
	rr := &runningRelay{r: r, cancel: cancel, done: make(chan struct{})}
	n.relays[name] = rr
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(rr.done)
		r.Run(ctx)
	}()
	n.t.Cleanup(cancel)
	return r
}

func (n *testNetwork) stopRelay(name string) {
	rr := n.relays[name]
	rr.cancel()
	<-rr.done
	delete(n.relays, name)
}

func (n *testNetwork) client(t testing.TB) *dirclient.Client {
	var seeds []dirclient.Seed
	for i, s := range n.seeds {
		seeds = append(seeds, dirclient.Seed{Name: fmt.Sprint("seed", i), URL: "http://" + s.DirAddr().String(), ID: s.ID()})
	}
	c, err := dirclient.New(dirclient.Options{Seeds: seeds, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// hangTimeout bounds every wait in these tests. It detects a hang, never
// measures speed: a loaded two-core machine under the race detector may
// take many times the usual seconds, and must still pass.
const hangTimeout = 2 * time.Minute

// waitView fetches until the view holds exactly want relays, or fails.
func waitView(t testing.TB, c *dirclient.Client, want map[keys.NodeID]bool) *directory.View {
	t.Helper()
	return waitViewBackedBy(t, c, want, 0)
}

// waitViewBackedBy is waitView that also waits until at least seeds seeds
// sign the view: a client accepts a majority, so the first view that holds
// every relay may still lack the slowest seed's signature.
func waitViewBackedBy(t testing.TB, c *dirclient.Client, want map[keys.NodeID]bool, seeds int) *directory.View {
	t.Helper()
	deadline := time.Now().Add(hangTimeout)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
		v, err := c.Fetch(ctx)
		cancel()
		if err == nil {
			got := map[keys.NodeID]bool{}
			for _, e := range v.Relays {
				got[e.Descriptor.NodeID()] = true
			}
			if len(got) == len(want) && len(v.Seeds) >= seeds && func() bool {
				for id := range want {
					if !got[id] {
						return false
					}
				}
				return true
			}() {
				return v
			}
			var missing []string
			for id := range want {
				if !got[id] {
					missing = append(missing, id.Short())
				}
			}
			last = fmt.Sprintf("%d relays, missing %v, backed by %d seeds", len(got), missing, len(v.Seeds))
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("view never held the %d expected relays backed by %d seeds; last: %s", len(want), seeds, last)
	return nil
}

func TestDirectoryConvergesAndDropsLeavers(t *testing.T) {
	n := newTestNetwork(t, 1)
	want := map[keys.NodeID]bool{}
	for i := 0; i < 5; i++ {
		r := n.startRelay(fmt.Sprint("relay", i), i < 2)
		want[r.ID()] = true
	}
	c := n.client(t)
	v := waitView(t, c, want)
	exits := 0
	for _, e := range v.Relays {
		if e.Flags&directory.FlagExit != 0 {
			exits++
		}
		if e.Flags&(directory.FlagRunning|directory.FlagValid|directory.FlagGuard) != directory.FlagRunning|directory.FlagValid|directory.FlagGuard {
			t.Errorf("%s: flags %v", e.Descriptor.Nickname, e.Flags)
		}
	}
	if exits != 2 {
		t.Fatalf("%d exits in the view, want 2", exits)
	}

	// A relay that shuts down gracefully leaves the consensus promptly.
	gone := n.relays["relay4"].r.ID()
	n.stopRelay("relay4")
	delete(want, gone)
	waitView(t, c, want)
}

// liar is a seed that signs whatever it likes: it serves an honest seed's
// latest consensus, changed by lie and signed with its own key. It serves
// nothing but lies, and counts the requests and the lies: a test that the
// client resists a lie must also see that the lie reached the client.
type liar struct {
	id     *keys.Identity
	honest *seed.Seed
	lie    func([]directory.Entry) []directory.Entry

	mu    sync.Mutex // guards the following fields
	asked int        // requests for dirserve.ConsensusPath
	lies  int        // lying documents served there
}

func (l *liar) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Only the path a client fetches counts as a fetch: a client sent
	// elsewhere must not look as if it heard the lie.
	if r.URL.Path != dirserve.ConsensusPath {
		http.NotFound(w, r)
		return
	}
	l.mu.Lock()
	l.asked++
	l.mu.Unlock()
	c := l.honest.Latest()
	if c == nil {
		http.Error(w, "not yet", http.StatusServiceUnavailable)
		return
	}
	sign := func(relays []directory.Entry) ([]byte, error) {
		doc := &directory.Consensus{ValidAfter: c.ValidAfter, FreshUntil: c.FreshUntil, ValidUntil: c.ValidUntil, Relays: relays}
		return doc.Sign(l.id)
	}
	forged, err := sign(l.lie(slices.Clone(c.Relays)))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// Signing is deterministic, so the honest list under the liar's key
	// gives the same bytes exactly when lie changed nothing.
	if same, err := sign(slices.Clone(c.Relays)); err != nil || bytes.Equal(forged, same) {
		http.Error(w, "nothing to lie about yet", http.StatusServiceUnavailable)
		return
	}
	l.mu.Lock()
	l.lies++
	l.mu.Unlock()
	w.Write(forged)
}

// counts returns how many times the liar was asked for its consensus and
// how many lying documents it served.
func (l *liar) counts() (asked, lies int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.asked, l.lies
}

// phantomRelay is a validly self-signed descriptor of a relay that does not
// exist: what a lying seed would add.
func phantomRelay(t testing.TB) directory.Entry {
	t.Helper()
	id, err := keys.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	ok, err := keys.GenerateOnionKey(id, rand.Reader, now, now.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	d := &directory.Descriptor{OnionCert: ok.Cert(), Nickname: "phantom", ORAddr: netip.MustParseAddrPort("127.0.0.1:9"),
		GossipName: id.ID().String(), GossipAddr: netip.MustParseAddrPort("127.0.0.1:9"), Bandwidth: 1 << 30,
		ProtocolVersion: 1, Sequence: 1, Published: now, Expires: now.Add(time.Hour),
		Roles: directory.RoleExit, Policy: exitpolicy.Default()}
	if _, err := d.Sign(id); err != nil {
		t.Fatal(err)
	}
	return directory.Entry{Flags: directory.FlagExit | directory.FlagGuard | directory.FlagRunning | directory.FlagValid | directory.FlagStable, Descriptor: d}
}

// TestOneLyingSeedOfThree runs two honest seeds and a third that lies in
// every way it can: it adds a relay, drops one, and changes another's
// flags. A client pinning all three sees exactly the honest network.
func TestOneLyingSeedOfThree(t *testing.T) {
	n := newTestNetwork(t, 2)
	want := map[keys.NodeID]bool{}
	for i := 0; i < 4; i++ {
		want[n.startRelay(fmt.Sprint("relay", i), i == 0).ID()] = true
	}
	liarID, err := keys.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	phantom := phantomRelay(t)
	l := &liar{id: liarID, honest: n.seeds[0], lie: func(es []directory.Entry) []directory.Entry {
		if len(es) > 1 {
			es = es[1:]                                                 // drop a relay
			es[0].Flags &^= directory.FlagValid | directory.FlagRunning // and demote another
		}
		return append(es, phantom)
	}}
	srv := httptest.NewServer(l)
	defer srv.Close()

	var seeds []dirclient.Seed
	for i, s := range n.seeds {
		seeds = append(seeds, dirclient.Seed{Name: fmt.Sprint("seed", i), URL: "http://" + s.DirAddr().String(), ID: s.ID()})
	}
	seeds = append(seeds, dirclient.Seed{Name: "liar", URL: srv.URL, ID: liarID.ID()})
	c, err := dirclient.New(dirclient.Options{Seeds: seeds})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitView(t, c, want)
	// The honest view alone would also come from a client that never
	// reached the liar. This client has no directory cache, so each Fetch
	// asks every seed, the liar included, before it returns.
	if asked, _ := l.counts(); asked == 0 {
		t.Fatal("the client never asked the liar for its consensus")
	}
	// The liar serves only lies, so a view its key backs is one in which
	// a lying document was counted, and still came out honest.
	v := waitViewBackedBy(t, c, want, 3)
	if asked, lies := l.counts(); lies == 0 {
		t.Fatalf("the liar was asked %d times and served no lie", asked)
	}
	if _, ok := v.ByID(phantom.Descriptor.NodeID()); ok {
		t.Fatal("the liar added a relay")
	}
	for _, e := range v.Relays {
		if e.Flags&(directory.FlagValid|directory.FlagRunning) != directory.FlagValid|directory.FlagRunning {
			t.Fatalf("the liar changed %s's flags to %v", e.Descriptor.Nickname, e.Flags)
		}
	}
}

// TestThreeSeedsTenRelays: three seeds gossiping with each other and ten
// relays that know only the first seed; a client pinning all three sees
// every relay backed by every seed.
func TestThreeSeedsTenRelays(t *testing.T) {
	n := newTestNetwork(t, 3)
	want := map[keys.NodeID]bool{}
	for i := 0; i < 10; i++ {
		want[n.startRelay(fmt.Sprint("relay", i), i%3 == 0).ID()] = true
	}
	v := waitViewBackedBy(t, n.client(t), want, 3)
	if len(v.Seeds) != 3 {
		t.Fatalf("the view is backed by %d seeds, want all 3", len(v.Seeds))
	}
}

// TestNetworkKeyKeepsStrangersOut: with a network key, a relay that does
// not have it tries to join, is refused, and is still missing from a
// consensus signed a full interval after the refusal; a relay that has the
// key joins.
func TestNetworkKeyKeepsStrangersOut(t *testing.T) {
	n := newTestNetwork(t, 0)
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes, base64
	n.gossip = []string{freeAddr(t)}
	cfg := conf.DefaultSeed()
	cfg.DataDir = filepath.Join(n.dir, "seed")
	cfg.GossipAddr = n.gossip[0]
	cfg.DirAddr = "127.0.0.1:0"
	cfg.ConsensusInterval = conf.Duration(time.Second)
	cfg.GuardMinUptime = 0
	cfg.MaxRelaysPerSlash16 = 0
	cfg.RateLimitPerMinute = 0
	cfg.GossipTiming = conf.GossipLocal
	cfg.NetworkKey = key
	// The seed's log and the stranger's are where a refused join shows.
	seedLog, strangerLog := &logBuffer{}, &logBuffer{}
	s, err := seed.New(&cfg, slog.New(slog.NewTextHandler(seedLog, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	n.seeds = append(n.seeds, s)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	n.wg.Add(1)
	go func() { defer n.wg.Done(); s.Run(ctx) }()

	n.networkKey = key
	insider := n.startRelay("insider", false)
	n.networkKey = ""
	n.log = slog.New(slog.NewTextHandler(strangerLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	stranger := n.startRelay("stranger", false)
	n.log = nil
	c := n.client(t)

	// fetch returns the client's newest view (nil if no majority yet),
	// failing the test at once if the stranger is in it: with the key
	// check off it joins instead of being refused.
	fetch := func() *directory.View {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
		defer cancel()
		v, err := c.Fetch(ctx)
		if err != nil {
			return nil
		}
		if _, ok := v.ByID(stranger.ID()); ok {
			t.Fatalf("the stranger joined: it is in the consensus valid after %v", v.ValidAfter)
		}
		return v
	}

	// Evidence that the stranger tried and was refused, in memberlist's
	// words: the seed refuses a join that is not encrypted with the key
	// (it is the only keyless node), and answers with an error encrypted
	// with it, which the stranger cannot read.
	seedRefused := "failed to receive: encryption is configured but remote state is not encrypted"
	strangerRefused := "failed to join " + n.gossip[0] + ": remote state is encrypted and encryption is not configured"
	deadline := time.Now().Add(hangTimeout)
	for !strings.Contains(seedLog.String(), seedRefused) || !strings.Contains(strangerLog.String(), strangerRefused) {
		if time.Now().After(deadline) {
			t.Fatalf("no evidence of the stranger's refused join: the seed logged %q: %v, the stranger %q: %v",
				seedRefused, strings.Contains(seedLog.String(), seedRefused),
				strangerRefused, strings.Contains(strangerLog.String(), strangerRefused))
		}
		fetch()
		time.Sleep(50 * time.Millisecond)
	}
	refused := time.Now()

	// A consensus whose membership was read a full interval after the
	// refusal (a seed's valid-after is when it read it) holds the insider
	// and, fetch checks, not the stranger: it was not merely slow.
	after := refused.Add(cfg.ConsensusInterval.D())
	for {
		v := fetch()
		if v != nil && !v.ValidAfter.Before(after) && len(v.Relays) == 1 && v.Relays[0].Descriptor.NodeID() == insider.ID() {
			t.Logf("the consensus valid after %v, %v after the refusal was seen, holds the insider alone",
				v.ValidAfter.Format(time.TimeOnly), v.ValidAfter.Sub(refused).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no consensus valid after %v, one interval after the stranger was refused, holds the insider alone", after)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// logBuffer keeps what a slog.TextHandler writes, for a test to read while
// the logging goroutines go on.
type logBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
