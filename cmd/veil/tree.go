package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"veil/shard"
)

// A shared directory travels as a tar archive that holds only directories
// and regular files, at relative clean paths, with no owner, a fixed time
// and two modes each (shard/SPEC.md §5.3). Packing is deterministic: the
// same tree gives the same bytes. Extraction takes nothing else.
const (
	// treeMaxPath bounds an entry's path: PATH_MAX on Linux.
	treeMaxPath = 4096
	// treeMaxEntries bounds how many entries an extraction creates, so a
	// hostile archive of empty entries cannot fill a disk's inodes.
	treeMaxEntries = 1 << 20
	// treeFileMode and treeExecMode are the only file modes restored:
	// executable by its owner or not. Set-id and sticky bits never travel.
	treeFileMode = 0o644
	treeExecMode = 0o755
	treeDirMode  = 0o755
)

// treePAXKeys are the only PAX records writeTree makes: a path that is
// long or not ASCII, a size over 8 GiB (archive/tar adds them when a
// header needs them).
var treePAXKeys = map[string]bool{"path": true, "size": true}

// treeTime is every entry's modification time: a file's times would tell
// when the sharer worked on it.
var treeTime = time.Unix(0, 0)

// treeEntry is one directory or regular file of a shared tree.
type treeEntry struct {
	rel  string // slash-separated, relative to the tree, clean
	dir  bool
	exec bool
	size int64
	path string // where it is on disk
}

// scanTree lists the tree under root in the order it is packed (lexical,
// a directory before what it holds). Anything but a directory or a
// regular file, or a name that cannot travel, is an error naming it.
func scanTree(root string) ([]treeEntry, error) {
	var entries []treeEntry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if err := checkTreePath(rel); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		e := treeEntry{rel: rel, path: p}
		switch t := d.Type(); {
		case t.IsDir():
			e.dir = true
		case t.IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			e.size, e.exec = info.Size(), info.Mode()&0o100 != 0
		default:
			return fmt.Errorf("%s is a %s: a shared directory holds only directories and regular files", p, fileKind(t))
		}
		entries = append(entries, e)
		if len(entries) > treeMaxEntries {
			return fmt.Errorf("%s holds more than %d entries", root, treeMaxEntries)
		}
		return nil
	})
	return entries, err
}

// fileKind names a file type for an error.
func fileKind(t fs.FileMode) string {
	switch {
	case t&fs.ModeSymlink != 0:
		return "symbolic link"
	case t&fs.ModeDevice != 0:
		return "device"
	case t&fs.ModeNamedPipe != 0:
		return "named pipe"
	case t&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// checkTreePath reports whether rel may name an entry of a tree: at most
// treeMaxPath bytes, clean, relative, each element a name a manifest could
// carry (no "..", no control character; shard.CheckName).
func checkTreePath(rel string) error {
	if rel == "" || len(rel) > treeMaxPath || path.IsAbs(rel) || path.Clean(rel) != rel {
		return fmt.Errorf("path %q is not a clean relative path of at most %d bytes", rel, treeMaxPath)
	}
	for elem := range strings.SplitSeq(rel, "/") {
		if err := shard.CheckName(elem); err != nil {
			return fmt.Errorf("path %q: %w", rel, err)
		}
	}
	return nil
}

// treeHeader is the tar header of e: nothing of the sharer's but the path,
// the size and whether a file is executable.
func treeHeader(e treeEntry) *tar.Header {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: e.rel, Mode: treeFileMode, Size: e.size, ModTime: treeTime}
	switch {
	case e.dir:
		h.Typeflag, h.Name, h.Mode, h.Size = tar.TypeDir, e.rel+"/", treeDirMode, 0
	case e.exec:
		h.Mode = treeExecMode
	}
	return h
}

// writeTree writes the archive of entries to w, the files' bytes from
// open. A file whose size changed since scanTree is an error: the archive
// would not be the tree.
func writeTree(w io.Writer, entries []treeEntry, open func(treeEntry) (io.ReadCloser, error)) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		if err := tw.WriteHeader(treeHeader(e)); err != nil {
			return fmt.Errorf("packing %s: %w", e.path, err)
		}
		if e.dir {
			continue
		}
		if err := copyEntry(tw, e, open); err != nil {
			return err
		}
	}
	return tw.Close()
}

func copyEntry(w io.Writer, e treeEntry, open func(treeEntry) (io.ReadCloser, error)) error {
	f, err := open(e)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyN(w, f, e.size)
	if err == nil {
		var one [1]byte
		if m, _ := f.Read(one[:]); m > 0 {
			err = errors.New("it grew")
		}
	}
	if err != nil {
		return fmt.Errorf("%s changed while it was being shared (%d of %d bytes read): %w", e.path, n, e.size, err)
	}
	return nil
}

// treeSize is the length of the archive writeTree makes of entries,
// found by packing zeros in their place.
func treeSize(entries []treeEntry) (int64, error) {
	var c countingWriter
	err := writeTree(&c, entries, func(e treeEntry) (io.ReadCloser, error) {
		return io.NopCloser(io.LimitReader(zeros{}, e.size)), nil
	})
	return int64(c), err
}

func openEntry(e treeEntry) (io.ReadCloser, error) { return os.Open(e.path) }

type countingWriter int64

func (c *countingWriter) Write(b []byte) (int, error) {
	*c += countingWriter(len(b))
	return len(b), nil
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }

// extractTree unpacks the archive r into dir, an empty directory, through
// an os.Root so that nothing lands outside it whatever the archive says.
// It refuses every entry shard/SPEC.md §5.3 does not allow: other types
// (links, devices), unclean or absolute paths, "..", an entry whose
// parent directory came not before it, and a path given twice.
func extractTree(r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	seen := map[string]bool{".": true} // entries so far, true for directories
	for count := 0; ; count++ {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the directory's archive: %w", err)
		}
		if count >= treeMaxEntries {
			return fmt.Errorf("the archive holds more than %d entries", treeMaxEntries)
		}
		name, err := checkTreeHeader(h, seen)
		if err != nil {
			return fmt.Errorf("refusing the directory: %w", err)
		}
		if h.Typeflag == tar.TypeDir {
			seen[name] = true
			if err := root.Mkdir(name, treeDirMode); err != nil {
				return err
			}
			continue
		}
		seen[name] = false
		mode := os.FileMode(treeFileMode)
		if h.Mode&0o100 != 0 {
			mode = treeExecMode
		}
		if err := extractFile(root, name, mode, tr); err != nil {
			return err
		}
	}
}

// checkTreeHeader returns the path h may be extracted to, or why not.
func checkTreeHeader(h *tar.Header, seen map[string]bool) (string, error) {
	name := h.Name
	switch h.Typeflag {
	case tar.TypeDir:
		name = strings.TrimSuffix(name, "/")
	case tar.TypeReg:
	default:
		return "", fmt.Errorf("entry %q is of tar type %q: only directories and regular files are allowed", h.Name, h.Typeflag)
	}
	if err := checkTreePath(name); err != nil {
		return "", fmt.Errorf("entry %w", err)
	}
	if h.Linkname != "" {
		return "", fmt.Errorf("entry %q links to %q", name, h.Linkname)
	}
	for key := range h.PAXRecords {
		if !treePAXKeys[key] {
			// GNU.sparse.* above all: a sparse file of a few bytes in the
			// archive would extract to as many zeros as its header says.
			return "", fmt.Errorf("entry %q has a PAX record %q: only a long path or size may have one", name, key)
		}
	}
	if _, dup := seen[name]; dup {
		return "", fmt.Errorf("entry %q comes twice", name)
	}
	if parent := path.Dir(name); !seen[parent] {
		return "", fmt.Errorf("entry %q comes before its directory %q", name, parent)
	}
	return name, nil
}

// extractFile writes one file, created new, and syncs it.
func extractFile(root *os.Root, name string, mode os.FileMode, r io.Reader) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}
