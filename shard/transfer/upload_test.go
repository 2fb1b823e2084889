package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"veil/onion/keys"
	"veil/shard"
	"veil/shard/store"
)

// tiny is the testnet code with the smallest segment: many segments for
// few bytes.
var tiny = shard.Params{K: 3, M: 2, SegmentSize: shard.MinSegmentSize}

// fakeNet is storage relays as in-memory stores, reached over a pipe that
// speaks the real storage messages (store.Serve). Each dial records the
// PUTs it carried, in order.
type fakeNet struct {
	t      *testing.T
	ids    []keys.NodeID
	stores map[keys.NodeID]*store.Store
	now    func() time.Time

	mu   sync.Mutex // guards puts
	puts []put
	// segOf maps a shard ID to its segment's first shard ID (expect).
	segOf map[[32]byte][32]byte
	// dropping holds the relays that keep nothing they are given (drop).
	dropping map[keys.NodeID]bool
}

// fixedKey is the file key of every share a test makes with expect.
var fixedKey = bytes.Repeat([]byte{7}, 32)

// expect returns a Net whose shares use fixedKey, and learns the shard
// IDs of the share of size bytes it will make, segment by segment.
func (f *fakeNet) expect(n *Net, p shard.Params, size int64) *Net {
	n.random = bytes.NewReader(fixedKey)
	link := &shard.Link{Params: p, FileKey: [32]byte(fixedKey)}
	f.segOf = map[[32]byte][32]byte{}
	for _, seg := range link.AllShardIDs(size) {
		for _, id := range seg.IDs {
			f.segOf[id] = seg.IDs[0]
		}
	}
	return n
}

type put struct {
	relay keys.NodeID
	id    [32]byte
}

// newFakeNet makes n relays; those in full have a quota no shard fits.
func newFakeNet(t *testing.T, n int, now func() time.Time, full ...int) *fakeNet {
	f := &fakeNet{t: t, stores: map[keys.NodeID]*store.Store{}, now: now}
	for i := range n {
		var id keys.NodeID
		id[0], id[1] = byte(i), 0xee
		quota := int64(1 << 30)
		for _, j := range full {
			if i == j {
				quota = 1
			}
		}
		st, err := store.Open(t.TempDir(), store.Options{Quota: quota, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		f.ids = append(f.ids, id)
		f.stores[id] = st
	}
	return f
}

// recorder notes the PUTs a client sends on its way to the store.
type recorder struct {
	net.Conn
	f     *fakeNet
	relay keys.NodeID
}

func (r *recorder) Write(b []byte) (int, error) {
	// A PUT frame's body starts with the shard ID (store wire.go); the
	// client writes the 5-byte frame head, then the body.
	if len(b) >= store.PutHeadLen {
		r.f.mu.Lock()
		r.f.puts = append(r.f.puts, put{r.relay, [32]byte(b[:32])})
		r.f.mu.Unlock()
	}
	return r.Conn.Write(b)
}

// dial serves one storage stream to relay's store for f's duration; the
// serving goroutine is its own and ends before it returns.
func (f *fakeNet) dial(ctx context.Context, relay keys.NodeID, fn func(*store.Client) error) error {
	st := f.stores[relay]
	if st == nil {
		return fmt.Errorf("no relay %x", relay[:2])
	}
	if f.dropping[relay] {
		st = f.sink()
	}
	a, b := net.Pipe()
	served := make(chan struct{})
	go func() {
		defer close(served)
		store.Serve(ctx, b, st, nil)
		b.Close()
	}()
	err := fn(store.NewClient(&recorder{Conn: a, f: f, relay: relay}))
	a.Close()
	<-served
	return err
}

// fill makes relays refuse every PUT, as a junk filler leaves them.
func (f *fakeNet) fill(relays ...keys.NodeID) {
	for _, r := range relays {
		st, err := store.Open(f.t.TempDir(), store.Options{Quota: 1, Now: f.now})
		if err != nil {
			f.t.Fatal(err)
		}
		f.stores[r] = st
	}
}

// holders maps each shard ID to the relays that hold it.
func (f *fakeNet) holders(link *shard.Link, size int64) map[[32]byte][]keys.NodeID {
	out := map[[32]byte][]keys.NodeID{}
	for _, seg := range link.AllShardIDs(size) {
		for _, id := range seg.IDs {
			for _, r := range f.ids {
				if f.stores[r].Has(id) {
					out[id] = append(out[id], r)
				}
			}
		}
	}
	return out
}

// offers returns how many PUTs were sent, after checking that no relay
// was sent two different shards of one segment: the rule covers offers,
// not only what relays kept, since a relay that refused may keep.
func (f *fakeNet) offers() int {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	type slot struct {
		relay keys.NodeID
		seg   [32]byte // the segment's first shard ID stands for it
	}
	offered := map[slot][32]byte{}
	for _, p := range f.puts {
		seg, ok := f.segOf[p.id]
		if !ok {
			f.t.Fatalf("a PUT of shard %x, not of the share expected", p.id[:4])
		}
		s := slot{p.relay, seg}
		if prev, ok := offered[s]; ok && prev != p.id {
			f.t.Fatalf("relay %x was offered two shards of one segment", p.relay[:1])
		}
		offered[s] = p.id
	}
	return len(f.puts)
}

// checkNoRelayHoldsTwo fails unless every relay holds at most one shard of
// every segment, of every kind; it returns how many shards are stored.
func checkNoRelayHoldsTwo(t *testing.T, f *fakeNet, link *shard.Link, size int64) int {
	t.Helper()
	held := f.holders(link, size)
	stored := 0
	for _, seg := range link.AllShardIDs(size) {
		per := map[keys.NodeID]int{}
		for _, id := range seg.IDs {
			for _, r := range held[id] {
				stored++
				if per[r]++; per[r] > 1 {
					t.Fatalf("%v segment %d: relay %x holds %d of its shards", seg.Kind, seg.Index, r[:1], per[r])
				}
			}
		}
	}
	return stored
}

func randomFile(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return b
}

// TestShareNeverPutsTwoShardsOfASegmentOnOneRelay: two of seven storage
// relays are full, as any client can make them with junk PUTs. Every
// shard whose primary is full moves to an alternate, and alternates are
// shared by every shard of a segment: the share must still put no two
// shards of one segment, of any kind, on one relay, and the file must
// come back. (Before the claims, segments that lost two primaries put
// both displaced shards on one alternate about half of the time.)
func TestShareNeverPutsTwoShardsOfASegmentOnOneRelay(t *testing.T) {
	f := newFakeNet(t, 7, time.Now, 2, 5)
	data := randomFile(40*tiny.SegmentSize + 3)
	n := f.expect(&Net{}, tiny, int64(len(data)))
	link, err := n.share(context.Background(), f.ids, nil, f.dial, bytes.NewReader(data), int64(len(data)), shard.Meta{}, tiny, shard.DefaultTTL, nil)
	if err != nil {
		t.Fatalf("share: %v", err)
	}
	size := int64(len(data))
	segs := link.AllShardIDs(size)
	if got, want := checkNoRelayHoldsTwo(t, f, link, size), len(segs)*tiny.N()-tiny.N()+tiny.HeadReplicas(); got != want {
		t.Fatalf("%d shards stored, want each of the %d once", got, want)
	}
	t.Logf("%d PUTs for %d shards", f.offers(), len(f.segOf))
	for _, full := range []int{2, 5} {
		if _, n := f.stores[f.ids[full]].Usage(); n != 0 {
			t.Fatalf("full relay %d holds %d shards", full, n)
		}
	}
	var out bytes.Buffer
	get := func(id [32]byte) []byte {
		for _, st := range f.stores {
			if d, err := st.Get(id); err == nil {
				return d
			}
		}
		return nil
	}
	if err := shard.Decode(link, get, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("the file did not come back: %v", err)
	}
}

// TestShareFailsRatherThanDoubleUp: six storage relays, and the two that
// are the primaries of shards 0 and 1 of data segment 0 are full: those
// two shards have one free relay left between them. The share fails,
// saying why, and no relay was offered two shards of any segment.
func TestShareFailsRatherThanDoubleUp(t *testing.T) {
	f := newFakeNet(t, 6, time.Now)
	data := randomFile(100)
	n := f.expect(&Net{}, tiny, int64(len(data)))
	link := &shard.Link{Params: tiny, FileKey: [32]byte(fixedKey)}
	cands, err := shard.Place(link.PlacementKey(), link.ShardIDs(shard.KindData, 0), f.ids)
	if err != nil {
		t.Fatal(err)
	}
	f.fill(cands[0][0], cands[1][0])
	_, err = n.share(context.Background(), f.ids, nil, f.dial, bytes.NewReader(data), int64(len(data)), shard.Meta{}, tiny, shard.DefaultTTL, nil)
	if !errors.Is(err, ErrNoRelayLeft) {
		t.Fatalf("share: %v, want ErrNoRelayLeft", err)
	}
	t.Log(err)
	if f.offers() == 0 {
		t.Fatal("no PUT was recorded")
	}
}

// TestUploadOffersARelayOneShardOfASegment: two shards of a segment
// whose primaries refuse, stored at once, with one relay free: one takes
// it, the other fails with ErrNoRelayLeft.
func TestUploadOffersARelayOneShardOfASegment(t *testing.T) {
	f := newFakeNet(t, 6, time.Now)
	link := &shard.Link{Params: tiny, FileKey: [32]byte(fixedKey)}
	f.expect(&Net{}, tiny, 1)
	ids := link.ShardIDs(shard.KindData, 0)
	cands, err := shard.Place(link.PlacementKey(), ids, f.ids)
	if err != nil {
		t.Fatal(err)
	}
	f.fill(cands[0][0], cands[1][0])
	seg := &shard.Segment{Kind: shard.KindData, Shards: make([]shard.Shard, len(ids))}
	for i, id := range ids {
		seg.Shards[i] = shard.Shard{ID: id, Data: []byte{byte(i)}}
	}
	claims := newSegmentClaims(seg, cands)
	n := &Net{}
	errs := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := n.upload(context.Background(), f.dial, upload{shard: seg.Shards[i], i: i, cands: cands[i], claims: claims}, shard.DefaultTTL)
			errs <- err
		}()
	}
	var failed int
	for range 2 {
		if err := <-errs; errors.Is(err, ErrNoRelayLeft) {
			failed++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if failed != 1 {
		t.Fatalf("%d of the two shards failed, want 1", failed)
	}
	f.offers()
	free := cands[0][1]
	if _, n := f.stores[free].Usage(); n != 1 {
		t.Fatalf("the free relay holds %d shards of the segment", n)
	}
}

// TestShareTTLIsABucket: a share asked to live 50 hours is stored for the
// 72-hour bucket, and the relays' coarse expiry puts it on a whole hour:
// alive just before that hour, gone at it (shard/SPEC.md §8.2).
func TestShareTTLIsABucket(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(472_222*3600, 0).Add(17 * time.Minute)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	f := newFakeNet(t, 5, clock)
	data := randomFile(3 * tiny.SegmentSize)
	link, err := (&Net{}).share(context.Background(), f.ids, nil, f.dial, bytes.NewReader(data), int64(len(data)), shard.Meta{}, tiny, 50*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	alive := func(at time.Time) int {
		mu.Lock()
		now = at
		mu.Unlock()
		n := 0
		for _, ids := range f.holders(link, int64(len(data))) {
			n += len(ids)
		}
		return n
	}
	hour := time.Unix(472_222*3600, 0)
	if n := alive(hour.Add(50*time.Hour + time.Minute)); n == 0 {
		t.Fatal("shards gone after the 50 hours asked: the TTL was not rounded up")
	}
	if n := alive(hour.Add(73*time.Hour - time.Nanosecond)); n == 0 {
		t.Fatal("shards gone before the 72-hour bucket's whole hour")
	}
	if n := alive(hour.Add(73 * time.Hour)); n != 0 {
		t.Fatalf("%d shards alive past the 72-hour bucket's whole hour", n)
	}
}

// TestShareShufflesWithinAWindow: a relay receives its shards of a window
// of segments in an order that does not follow the segments, and the
// manifest's and head's shards are not sent after every data shard.
func TestShareShufflesWithinAWindow(t *testing.T) {
	f := newFakeNet(t, 5, time.Now)
	data := randomFile(3 * shuffleWindow * tiny.SegmentSize)
	n := &Net{Workers: 1} // one at a time: arrival order is send order
	link, err := n.share(context.Background(), f.ids, nil, f.dial, bytes.NewReader(data), int64(len(data)), shard.Meta{}, tiny, shard.DefaultTTL, nil)
	if err != nil {
		t.Fatal(err)
	}
	where := map[[32]byte]shard.SegmentIDs{}
	for _, seg := range link.AllShardIDs(int64(len(data))) {
		for _, id := range seg.IDs {
			where[id] = seg
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.puts) != len(where) {
		t.Fatalf("%d PUTs for %d shards", len(f.puts), len(where))
	}
	// Per relay, the data segments in the order their shards arrived.
	order := map[keys.NodeID][]uint64{}
	lastData, firstTail := -1, len(f.puts)
	for k, p := range f.puts {
		seg := where[p.id]
		if seg.Kind == shard.KindData {
			order[p.relay] = append(order[p.relay], seg.Index)
			lastData = k
		} else {
			firstTail = min(firstTail, k)
		}
	}
	if firstTail > lastData {
		t.Fatal("the manifest's and head's shards all came after the last data shard")
	}
	for r, segs := range order {
		sorted := true
		for k := 1; k < len(segs); k++ {
			if segs[k] < segs[k-1] {
				sorted = false
			}
			// Windows follow one another: no shard is sent more than a
			// window ahead or behind its place.
			if d := int(segs[k]) - k; d >= shuffleWindow || d <= -shuffleWindow {
				t.Fatalf("relay %x: segment %d sent as its %dth shard", r[:1], segs[k], k)
			}
		}
		if sorted {
			t.Fatalf("relay %x received its shards in segment order %v", r[:1], segs)
		}
	}
}
