package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Rebuilding the index at Open, and quarantining damaged files.

// load scans dir/xx/ and fills the index.
func (s *Store) load() error {
	now := s.opts.Now().UnixNano()
	s.nextExpiry = maxExpiry
	subs, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		if !sub.IsDir() || !isFanout(sub.Name()) {
			continue // quarantine/ and anything an operator put here
		}
		subdir := filepath.Join(s.dir, sub.Name())
		files, err := os.ReadDir(subdir)
		if err != nil {
			return err
		}
		for _, f := range files {
			s.loadFile(subdir, sub.Name(), f.Name(), now)
		}
	}
	return nil
}

func (s *Store) loadFile(subdir, sub, name string, now int64) {
	path := filepath.Join(subdir, name)
	if isTempName(name) {
		s.log.Info("store: removing temporary file left by a crash", "path", path)
		os.Remove(path)
		return
	}
	id, ok := parseShardName(sub, name)
	if !ok {
		s.log.Warn("store: ignoring unexpected file", "path", path)
		return
	}
	h, size, err := readHeader(path)
	if err == nil && h.id != id {
		err = damagedf("header names shard %x", h.id[:4])
	}
	if err == nil && size != int64(HeaderLen)+int64(h.length) {
		err = damagedf("file is %d bytes, header says %d", size, int64(HeaderLen)+int64(h.length))
	}
	if err == nil && h.length > MaxShardSize {
		// No valid Put writes this, whatever the options were then.
		err = damagedf("content %d bytes exceeds MaxShardSize %d", h.length, MaxShardSize)
	}
	if err != nil {
		if errors.Is(err, errDamaged) {
			s.quarantine(path, name, err)
		} else {
			s.log.Warn("store: cannot read shard file; skipping it", "path", path, "err", err)
		}
		return
	}
	if h.expiry <= now {
		os.Remove(path)
		return
	}
	s.index[id] = entry{size: size, expiry: h.expiry, sum: h.sum}
	s.usage += size
	s.nextExpiry = min(s.nextExpiry, h.expiry)
}

// maxExpiry is the latest time an int64 of Unix nanoseconds holds.
const maxExpiry = int64(^uint64(0) >> 1)

func isFanout(name string) bool {
	const hexdigits = "0123456789abcdef"
	return len(name) == 2 && bytes.IndexByte([]byte(hexdigits), name[0]) >= 0 && bytes.IndexByte([]byte(hexdigits), name[1]) >= 0
}

// readHeader reads the header of the file at path, and its size.
func readHeader(path string) (fileHeader, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileHeader{}, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileHeader{}, 0, err
	}
	var b [HeaderLen]byte
	n, err := io.ReadFull(f, b[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fileHeader{}, 0, err
	}
	h, err := parseHeader(b[:n])
	return h, fi.Size(), err
}

// quarantine moves a damaged shard file into dir/quarantine for an
// operator to inspect, keeping at most maxQuarantined files there, and
// logs why. If it cannot move the file it removes it: a damaged shard
// must never be served.
func (s *Store) quarantine(path, name string, why error) {
	qdir := filepath.Join(s.dir, quarantineDir)
	now := s.opts.Now()
	dst := filepath.Join(qdir, fmt.Sprintf("%s.%d", name, now.UnixNano()))
	err := mkdirDurable(qdir)
	if err == nil {
		err = os.Rename(path, dst)
	}
	if err == nil {
		os.Chtimes(dst, now, now) // pruneQuarantine keeps the newest
	}
	if err != nil {
		os.Remove(path)
		s.log.Error("store: damaged shard file removed", "path", path, "why", why, "err", err)
		return
	}
	s.log.Error("store: damaged shard file quarantined", "path", path, "to", dst, "why", why)
	s.pruneQuarantine(qdir)
}

func (s *Store) pruneQuarantine(qdir string) {
	ents, err := os.ReadDir(qdir)
	if err != nil || len(ents) <= maxQuarantined {
		return
	}
	type aged struct {
		name string
		mod  time.Time
	}
	files := make([]aged, 0, len(ents))
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			files = append(files, aged{e.Name(), fi.ModTime()})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].mod.Before(files[j].mod) })
	for _, f := range files[:max(0, len(files)-maxQuarantined)] {
		os.Remove(filepath.Join(qdir, f.name))
	}
}
