package relay

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"veil/conf"
	"veil/conf/exitpolicy"
	"veil/directory"
	"veil/directory/dirclient"
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
	// relayEdit, if set, changes the config of the relays started next.
	relayEdit func(*conf.Relay)
	// unusedAfter, if set, is how long the relays started next leave an
	// unused circuit (createLimits.unusedAfter).
	unusedAfter time.Duration
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
			s.Run(ctx)
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
	r, err := New(&cfg, nil)
	if err != nil {
		n.t.Fatal(err)
	}
	r.tamperForward = tamper
	r.injectBackward = n.inject
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
// latest consensus, changed by lie and signed with its own key.
type liar struct {
	id     *keys.Identity
	honest *seed.Seed
	lie    func([]directory.Entry) []directory.Entry
}

func (l *liar) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := l.honest.Latest()
	if c == nil {
		http.Error(w, "not yet", http.StatusServiceUnavailable)
		return
	}
	forged := &directory.Consensus{ValidAfter: c.ValidAfter, FreshUntil: c.FreshUntil, ValidUntil: c.ValidUntil,
		Relays: l.lie(slices.Clone(c.Relays))}
	b, err := forged.Sign(l.id)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Write(b)
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
	v := waitView(t, c, want)
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
// not have it never joins, while one that has it does.
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
	s, err := seed.New(&cfg, nil)
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
	n.startRelay("stranger", false)
	only := map[keys.NodeID]bool{insider.ID(): true}
	waitView(t, n.client(t), only)
	// Give the stranger the time it would need to join, then look again:
	// waitView fails if the view holds anything but the insider.
	time.Sleep(2 * time.Second)
	waitView(t, n.client(t), only)
}
