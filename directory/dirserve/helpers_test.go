package dirserve

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"veil/directory"
	"veil/directory/internal/dirtest"
	"veil/onion/keys"
)

// hangTimeout bounds every wait in these tests. It detects a hang, never
// measures speed: a loaded two-core machine under the race detector must
// still pass.
const hangTimeout = 2 * time.Minute

// t0 is an arbitrary fixed "now" for every test.
var t0 = dirtest.T0

// testRelay returns a signed middle relay's descriptor published at t0.
func testRelay(t testing.TB, label string, port uint16) *directory.Descriptor {
	t.Helper()
	id := dirtest.Identity(t, label)
	d := dirtest.Descriptor(t, id, label)
	d.ORAddr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	d.GossipAddr = netip.MustParseAddrPort("127.0.0.1:7947")
	dirtest.Sign(t, id, d)
	return d
}

// testConsensus signs a document valid from at, fresh for a minute, that
// lists n relays.
func testConsensus(t testing.TB, seed *keys.Identity, at time.Time, n int) *directory.Consensus {
	t.Helper()
	var entries []directory.Entry
	for i := range n {
		entries = append(entries, directory.Entry{
			Flags:      dirtest.Running,
			Descriptor: testRelay(t, fmt.Sprint(i), uint16(9001+i)),
		})
	}
	return dirtest.SignedConsensus(t, seed, at, entries)
}
