package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"veil/conf/durable"
	"veil/relay/path"
	"veil/shard"
)

func runFetch(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fetch", stderr)
	cfgPath := clientConfigFlag(fs)
	out := fs.String("o", "", "where to write the file or directory (default: the name it was shared under, in the current directory; an existing directory: that name inside it)")
	force := fs.Bool("force", false, "replace what is already at the output path")
	if err := parseFlags(fs, reorderFlags(fs, args)); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usageErr("veil fetch [--config client.toml] [-o PATH] [--force] LINK   (or the link on standard input)", "fetch: want one link")
	}
	link, err := linkArg(fs, "fetch")
	if err != nil {
		return err
	}
	// A file named by -o is refused before any byte is fetched; a name
	// from the share is checked once its manifest is in.
	if *out != "" && !*force && !isDir(*out) {
		if _, err := os.Lstat(*out); err == nil {
			return existsErr(*out)
		}
	}
	ctx, stop := signalContext()
	defer stop()
	// Logs go through the bar, which erases itself before a log line.
	bar := newProgress(stderr, "fetch")
	defer bar.finish(false)
	n, err := openNetwork(ctx, *cfgPath, bar)
	if err != nil {
		return interruptedOr(ctx, err)
	}
	defer n.close()
	dst := &fetchOut{out: *out, force: *force}
	defer dst.cleanup()
	err = n.net.FetchTo(ctx, link, dst.open, bar.update)
	bar.finish(err == nil)
	if err == nil {
		err = dst.commit()
	}
	if err != nil {
		var se *shard.ShardsError
		var ce *cliError
		hint := ""
		switch {
		case ctx.Err() != nil:
			return errInterrupted
		case errors.As(err, &ce):
			return err
		case errors.Is(err, path.ErrNoGuard):
			hint = noGuardHint
		case errors.As(err, &se):
			hint = "too many storage relays are gone or damaged; run veil repair while enough remain"
		}
		return &cliError{msg: "fetch", err: err, hint: hint}
	}
	fmt.Fprintln(stdout, dst.target)
	return nil
}

// existsErr refuses to write over what is at target.
func existsErr(target string) error {
	return &cliError{msg: fmt.Sprintf("fetch: %s already exists", target), hint: "fetch never overwrites: give --force to replace it, or -o another path"}
}

// fetchOut is where a fetch writes: a temporary file beside the target,
// renamed to it only once every byte is verified (and, for a directory,
// extracted beside it first), so the target never holds a partial file
// or tree, and a fetch that fails or is interrupted leaves nothing.
type fetchOut struct {
	out   string // -o, "" for the share's name in the current directory
	force bool

	meta   shard.Meta
	target string
	part   *os.File // the temporary file, locked (createPart)
}

// open is the transfer.Opener: the manifest is in, no data is fetched
// yet. It finds the target and refuses one that exists.
func (f *fetchOut) open(m *shard.Manifest) (io.Writer, error) {
	target, err := outputPath(f.out, m.Meta)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(target); err == nil && !f.force {
		return nil, existsErr(target)
	}
	// A fetch that was killed left its own temporary files: remove those
	// first.
	removeStaleParts(target)
	part, err := createPart(target)
	if err != nil {
		return nil, err
	}
	f.meta, f.target, f.part = m.Meta, target, part
	return part, nil
}

// outputPath is where a share with meta goes: -o, or the share's own name
// in the current directory or in the directory -o names. The name passed
// ParseManifest's rules; it is checked again here, where it becomes a
// path, so that no name can reach outside that directory.
func outputPath(out string, meta shard.Meta) (string, error) {
	name := meta.Name
	if err := shard.CheckName(name); err != nil {
		return "", fmt.Errorf("the share's name: %w", err)
	}
	if out == "" {
		if name == "" {
			return "", &cliError{msg: "fetch: the share carries no name to save it under", hint: "give -o PATH"}
		}
		return name, nil
	}
	if isDir(out) {
		if name == "" {
			return "", &cliError{msg: fmt.Sprintf("fetch: %s is a directory and the share carries no name to save it under there", out), hint: "give -o " + filepath.Join(out, "NAME")}
		}
		return filepath.Join(out, name), nil
	}
	return out, nil
}

// isDir reports whether p is a directory or a symbolic link to one: -o
// ~/Downloads puts the file inside it either way.
func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// treeSuffix names the directory a fetch extracts a shared tree into,
// beside its temporary file.
const treeSuffix = ".d"

// commit makes the verified bytes the target: the file itself, or the
// tree extracted from them; renamed without replacing anything unless
// --force, then the directory synced.
func (f *fetchOut) commit() error {
	if err := f.part.Sync(); err != nil {
		return err
	}
	from := f.part.Name()
	if f.meta.Content == shard.ContentTree {
		dir := from + treeSuffix
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		if _, err := f.part.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := extractTree(bufio.NewReader(f.part), dir); err != nil {
			return err
		}
		if err := os.Chmod(dir, treeDirMode); err != nil {
			return err
		}
		if err := durable.SyncDir(dir); err != nil {
			return err
		}
		from = dir
	}
	// Renamed while the temporary file is still open and locked: closed
	// first, it could be taken for a killed fetch's file and removed.
	var err error
	if f.force {
		err = renameReplace(from, f.target)
	} else {
		err = renameNoReplace(from, f.target)
	}
	if errors.Is(err, fs.ErrExist) {
		return existsErr(f.target)
	}
	if err != nil {
		return err
	}
	return durable.SyncDir(filepath.Dir(f.target))
}

// cleanup removes the temporary file and tree, and what --force
// replaced (renameReplace leaves it there), then drops the lock.
func (f *fetchOut) cleanup() {
	if f.part == nil {
		return
	}
	os.RemoveAll(f.part.Name() + treeSuffix)
	os.RemoveAll(f.part.Name())
	f.part.Close()
}

// partPrefix starts the name of the temporary file a fetch to out writes
// ("." and out's name, then ".part-" and random digits): hidden, and
// findable by the next fetch to out.
func partPrefix(out string) string { return "." + filepath.Base(out) + ".part-" }

// partAttempts bounds how often createPart starts over when another fetch
// removed its new file before it was locked: that needs a third fetch to
// the same output starting within microseconds, so twice is already rare.
const partAttempts = 3

// createPart creates the temporary file for a fetch to out and holds an
// exclusive flock on it while the fetch runs, so that another fetch to out
// knows it is in use. The kernel drops the lock when the process ends,
// killed or not.
func createPart(out string) (*os.File, error) {
	for range partAttempts {
		f, err := os.CreateTemp(filepath.Dir(out), partPrefix(out)+"*")
		if err != nil {
			return nil, err
		}
		// Between CreateTemp and Flock the file is unlocked, and a fetch
		// cleaning up may take it for a stale one: it then holds the lock
		// (and removes the file), or has removed it already.
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			continue
		}
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		mine, err := f.Stat()
		if err == nil {
			var there os.FileInfo
			if there, err = os.Lstat(f.Name()); err == nil && os.SameFile(mine, there) {
				return f, nil
			}
		}
		f.Close()
	}
	return nil, fmt.Errorf("creating a temporary file beside %s: removed under us %d times by another fetch", out, partAttempts)
}

// removeStaleParts removes the temporary files, and the directories a
// shared tree was being extracted into, that fetches to out left when
// they were killed: those no running fetch holds locked. It touches only
// regular files and directories named as createPart and commit name them,
// and leaves any it cannot open or lock.
func removeStaleParts(out string) {
	dir, prefix := filepath.Dir(out), partPrefix(out)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		digits, ok := strings.CutPrefix(e.Name(), prefix)
		digits, tree := strings.CutSuffix(digits, treeSuffix)
		if !ok || digits == "" || strings.Trim(digits, "0123456789") != "" {
			continue
		}
		if tree && !e.IsDir() || !tree && !e.Type().IsRegular() {
			continue
		}
		name := filepath.Join(dir, e.Name())
		partName := filepath.Join(dir, prefix+digits)
		f, err := os.OpenFile(partName, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			// A tree outlives its file only when a fetch was killed
			// between removing one and the other.
			if tree && errors.Is(err, fs.ErrNotExist) {
				os.RemoveAll(name)
			}
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			// Removed while locked, so no fetch can be starting on it.
			os.RemoveAll(name)
		}
		f.Close()
	}
}
