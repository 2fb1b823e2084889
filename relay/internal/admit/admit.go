// Package admit bounds the connections a listener holds in their
// handshake: at most a total, and at most a share of it per source, so
// that each costs a goroutine and a little state and no more of them can
// pile up.
//
// At a limit the table closes an old connection to make room, never the
// new one, since refusing instead would let idle connections lock every
// new peer out. It picks the oldest connection that has sent nothing, or
// the oldest of all if every one has spoken: an honest peer speaks at once
// and finishes in milliseconds, so it is never chosen while silent ones
// remain, and a flood of silent connections that keeps re-dialling only
// evicts itself, even while an honest handshake waits on a slow machine.
package admit

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Table holds connections in their handshake, oldest first.
type Table struct {
	max, perSource int

	mu sync.Mutex // guards the following fields, and every Entry's elem
	// entries holds the admitted connections, oldest first; bySource
	// counts them by SourceOf.
	entries  *list.List // of *Entry
	bySource map[netip.Prefix]int
}

// Entry is one connection in the table.
type Entry struct {
	c   net.Conn
	src netip.Prefix
	// heard says the peer has sent a byte (Hear): a connection that has
	// said nothing is the one to evict first, however young.
	heard atomic.Bool
	elem  *list.Element // on entries; nil once done or evicted (guarded by Table.mu)
}

// Eviction says which limit, if any, made Admit close an older connection.
type Eviction int

const (
	NoEviction    Eviction = iota // there was room
	AtSourceLimit                 // the source's own victim was closed
	AtLimit                       // the victim among all was closed
)

// New returns a table that holds at most max connections, and at most
// perSource from one source. Both must be positive.
func New(max, perSource int) *Table {
	if max <= 0 || perSource <= 0 {
		panic("admit: internal error: limits must be positive")
	}
	return &Table{max: max, perSource: perSource, entries: list.New(), bySource: map[netip.Prefix]int{}}
}

// Admit adds c to the table and returns its entry, with which limit, if
// any, made it evict another. At the per-source limit for c's source it
// closes that source's victim, at the total limit the victim among all
// (the oldest that has sent nothing, or else the oldest). It never waits
// on a peer: closing a connection only wakes its reader.
func (t *Table) Admit(c net.Conn) (*Entry, Eviction) {
	e := &Entry{c: c, src: SourceOf(c.RemoteAddr())}
	t.mu.Lock()
	defer t.mu.Unlock()
	why := NoEviction
	if t.bySource[e.src] >= t.perSource {
		t.evict(t.victim(func(o *Entry) bool { return o.src == e.src }))
		why = AtSourceLimit
	}
	if t.entries.Len() >= t.max {
		t.evict(t.victim(func(*Entry) bool { return true }))
		why = AtLimit
	}
	e.elem = t.entries.PushBack(e)
	t.bySource[e.src]++
	return e, why
}

// victim picks the entry to evict among those that match: the oldest that
// has sent nothing, or else the oldest. It runs only at a limit, over at
// most max entries. Called with t.mu held.
func (t *Table) victim(match func(*Entry) bool) *Entry {
	var oldest *Entry
	for el := t.entries.Front(); el != nil; el = el.Next() {
		e := el.Value.(*Entry)
		if !match(e) {
			continue
		}
		if !e.heard.Load() {
			return e
		}
		if oldest == nil {
			oldest = e
		}
	}
	return oldest
}

// evict takes e off the table and closes its connection. Called with t.mu
// held.
func (t *Table) evict(e *Entry) {
	if e == nil {
		return // a count without entries: cannot happen
	}
	t.remove(e)
	e.c.Close()
}

// remove takes e off the table and reports whether it was there. Called
// with t.mu held.
func (t *Table) remove(e *Entry) bool {
	if e.elem == nil {
		return false
	}
	t.entries.Remove(e.elem)
	e.elem = nil
	if t.bySource[e.src]--; t.bySource[e.src] <= 0 {
		delete(t.bySource, e.src)
	}
	return true
}

// Done takes e off the table once its handshake is over, however it
// ended. It reports false if e was no longer there: evicted (its
// connection is closed), or already done.
func (t *Table) Done(e *Entry) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.remove(e)
}

// CloseAll closes every connection in the table, for a listener that is
// stopping. The entries stay until their owners call Done.
func (t *Table) CloseAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for el := t.entries.Front(); el != nil; el = el.Next() {
		el.Value.(*Entry).c.Close()
	}
}

// Hear records that the peer has sent a byte; its connection's Read calls
// it. Safe to call at any time, without the table's lock.
func (e *Entry) Hear() {
	if !e.heard.Load() {
		e.heard.Store(true)
	}
}

// Heard reports whether the peer has sent a byte.
func (e *Entry) Heard() bool { return e.heard.Load() }

// SourceOf is the unit the per-source limit counts: an IPv4 address, or an
// IPv6 /64, since one host usually holds a whole /64 and could otherwise
// take a new address per connection.
func SourceOf(a net.Addr) netip.Prefix {
	if a == nil {
		return netip.Prefix{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Prefix{} // not TCP/IP: all such share one count
	}
	ip := ap.Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}
