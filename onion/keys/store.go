package keys

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// File names inside the data directory.
const (
	IdentityFile = "identity.key"
	OnionFile    = "onion.key"
)

// Defaults for Options, with the reason for each.
const (
	// DefaultRotateEvery follows Tor's onion-key lifetime: long enough that
	// descriptors need not change often, short enough that a stolen onion
	// key is useful only for a week.
	DefaultRotateEvery = 7 * 24 * time.Hour
	// DefaultGrace covers clients that still hold yesterday's descriptor.
	DefaultGrace = 24 * time.Hour
)

// Options configure a Store. The zero value of each field means its default.
type Options struct {
	RotateEvery time.Duration    // onion key lifetime before rotation; default DefaultRotateEvery
	Grace       time.Duration    // how long the previous key still works; default DefaultGrace
	Now         func() time.Time // clock; default time.Now
	Rand        io.Reader        // key material; default crypto/rand.Reader
}

func (o Options) withDefaults() (Options, error) {
	if o.RotateEvery < 0 || o.Grace < 0 {
		return o, fmt.Errorf("keys: negative rotation period %v or grace %v", o.RotateEvery, o.Grace)
	}
	if o.RotateEvery == 0 {
		o.RotateEvery = DefaultRotateEvery
	}
	if o.Grace == 0 {
		o.Grace = DefaultGrace
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	return o, nil
}

// Store holds a node's keys, loaded from or created in a data directory.
// It is safe for concurrent use.
type Store struct {
	dir      string
	opts     Options
	identity *Identity // never changes after Open

	mu       sync.Mutex // guards the following fields and the onion file
	current  *OnionKey
	previous *OnionKey // nil if none; kept in the file until dropped
}

const (
	hintDamagedIdentity = "the file is damaged; restore it from a backup, or delete it and " +
		OnionFile + " to create a new identity (relays will see a new node)"
	hintDamagedOnion = "the file is damaged; restore it from a backup, or delete it to create " +
		"a new onion key (the identity is kept)"
)

// Open loads the keys in dir, creating the directory (0700) and any missing
// key (0600) on first start. It refuses to start, with an *Error whose Hint
// says what to do, when the directory or a key file is accessible by group
// or others, or a key file is damaged or belongs to another identity. It
// then rotates the onion key if it is due, so a node that was offline for
// long does not publish an expired cert.
func Open(dir string, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := openDir(dir); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, opts: opts}
	if s.identity, err = s.loadIdentity(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadOnion(); err != nil {
		return nil, err
	}
	if _, err := s.rotateIfDueLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

func openDir(dir string) error {
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return &Error{Path: dir, Msg: "create data directory: " + errText(err), Err: err}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return &Error{Path: dir, Msg: "stat: " + errText(err), Err: err}
	}
	if !fi.IsDir() {
		return &Error{Path: dir, Msg: "not a directory", Hint: "set the data directory to a directory"}
	}
	return checkPerm(dir, fi, dirPerm)
}

func (s *Store) path(name string) string { return filepath.Join(s.dir, name) }

func (s *Store) loadIdentity() (*Identity, error) {
	path := s.path(IdentityFile)
	b, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s.createIdentity()
	}
	if err != nil {
		return nil, err
	}
	id, err := parseIdentityFile(b)
	if err != nil {
		return nil, &Error{Path: path, Msg: err.Error(), Hint: hintDamagedIdentity, Err: ErrDamaged}
	}
	return id, nil
}

func (s *Store) createIdentity() (*Identity, error) {
	onionPath := s.path(OnionFile)
	// A new identity would not match the onion file's certs, and silently
	// replacing a lost identity would make the node a stranger to the network.
	if _, err := os.Lstat(onionPath); err == nil {
		return nil, &Error{
			Path: s.path(IdentityFile),
			Msg:  "missing, but " + OnionFile + " exists",
			Hint: "restore " + IdentityFile + " from a backup, or delete " + onionPath +
				" to create a new identity (relays will see a new node)",
			Err: fs.ErrNotExist,
		}
	}
	id, err := GenerateIdentity(s.opts.Rand)
	if err != nil {
		return nil, err
	}
	if err := s.write(IdentityFile, marshalIdentityFile(id)); err != nil {
		return nil, err
	}
	return id, nil
}

// loadOnion reads the onion file or creates a first key. s.mu must be held.
func (s *Store) loadOnion() error {
	path := s.path(OnionFile)
	b, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err := s.newOnionKey(s.opts.Now())
		if err != nil {
			return err
		}
		if err := s.write(OnionFile, marshalOnionFile([]*OnionKey{k})); err != nil {
			return err
		}
		s.current = k
		return nil
	}
	if err != nil {
		return err
	}
	defer clear(b)
	keys, err := parseOnionFile(b)
	if err != nil {
		return &Error{Path: path, Msg: err.Error(), Hint: hintDamagedOnion, Err: ErrDamaged}
	}
	if !bytes.Equal(keys[0].cert.IdentityKey, s.identity.Public()) {
		for _, k := range keys {
			k.retire()
		}
		return &Error{
			Path: path,
			Msg: fmt.Sprintf("onion key is certified by node %s, not by this node %s",
				keys[0].cert.NodeID().Short(), s.identity.ID().Short()),
			Hint: IdentityFile + " and " + OnionFile + " come from different nodes; restore the " +
				"matching pair from a backup, or delete " + path + " to create a new onion key",
			Err: ErrKeyMismatch,
		}
	}
	s.current = keys[0]
	if len(keys) > 1 {
		s.previous = keys[1]
	}
	return nil
}

func (s *Store) newOnionKey(now time.Time) (*OnionKey, error) {
	return GenerateOnionKey(s.identity, s.opts.Rand, now, now.Add(s.opts.RotateEvery+s.opts.Grace))
}

func (s *Store) write(name string, data []byte) error {
	defer clear(data)
	path := s.path(name)
	if err := writeFileAtomic(path, data); err != nil {
		return &Error{Path: path, Msg: err.Error(), Err: err}
	}
	return nil
}

// Identity returns the node's identity key.
func (s *Store) Identity() *Identity { return s.identity }

// OnionKeys returns the current onion key, whose cert goes in the node's
// descriptor, and the previous one while it is inside its grace period
// (nil otherwise).
func (s *Store) OnionKeys() (current, previous *OnionKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current, s.usablePrevious(s.opts.Now())
}

// usablePrevious applies the grace period even before RotateIfDue has run,
// so a dropped key is never offered. s.mu must be held.
func (s *Store) usablePrevious(now time.Time) *OnionKey {
	if s.previous == nil || !now.Before(s.graceEnd()) {
		return nil
	}
	return s.previous
}

// graceEnd is when the previous key stops working: Grace after the rotation
// that replaced it, which is when the current key was created.
func (s *Store) graceEnd() time.Time { return s.current.Created().Add(s.opts.Grace) }

// FindOnionKey returns the usable onion key with public key pub, for a relay
// to pick the key a handshake names.
func (s *Store) FindOnionKey(pub [32]byte) (*OnionKey, bool) {
	cur, prev := s.OnionKeys()
	switch {
	case cur.Public() == pub:
		return cur, true
	case prev != nil && prev.Public() == pub:
		return prev, true
	}
	return nil, false
}

// RotateIfDue replaces the current onion key when it is due, keeping the
// old one as previous for Grace, and drops a previous key whose grace has
// ended. Either change is written to disk before it takes effect. Call it
// periodically (every few minutes); rotated reports a new current key, whose
// cert the node must publish.
func (s *Store) RotateIfDue() (rotated bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rotateIfDueLocked()
}

func (s *Store) rotateIfDueLocked() (bool, error) {
	now := s.opts.Now()
	if s.rotationDue(now) {
		return true, s.rotate(now)
	}
	if s.previous != nil && s.usablePrevious(now) == nil {
		if err := s.write(OnionFile, marshalOnionFile([]*OnionKey{s.current})); err != nil {
			return false, err
		}
		s.previous.retire()
		s.previous = nil
	}
	return false, nil
}

// rotationDue is true once the current key has reached RotateEvery, but also
// when its cert would expire within Grace (RotateEvery was lowered since it
// was made) or is not yet valid (the clock went back): in each case clients
// cannot rely on the published cert.
func (s *Store) rotationDue(now time.Time) bool {
	c := s.current.cert
	return now.Sub(c.Created) >= s.opts.RotateEvery ||
		!now.Add(s.opts.Grace).Before(c.Expires) ||
		now.Before(c.Created.Add(-CertClockSkew))
}

func (s *Store) rotate(now time.Time) error {
	next, err := s.newOnionKey(now)
	if err != nil {
		return err
	}
	old := s.current
	keep := []*OnionKey{next}
	// A key whose cert has expired cannot be named by any honest client.
	if old.cert.Valid(now) == nil {
		keep = append(keep, old)
	}
	if err := s.write(OnionFile, marshalOnionFile(keep)); err != nil {
		next.retire()
		return err
	}
	if s.previous != nil {
		s.previous.retire()
	}
	s.current, s.previous = next, nil
	if len(keep) > 1 {
		s.previous = old
	} else {
		old.retire()
	}
	return nil
}
