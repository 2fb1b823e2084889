package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"veil/conf"
	"veil/conf/durable"
	"veil/directory"
	"veil/directory/dirclient"
	"veil/relay/client"
	"veil/relay/path"
	"veil/shard"
	"veil/shard/transfer"
)

// network is what share and fetch need: a directory view and circuits.
type network struct {
	dc  *dirclient.Client
	cl  *client.Client
	net *transfer.Net
}

func openNetwork(ctx context.Context, configPath string, stderr io.Writer) (*network, error) {
	cfg, err := conf.LoadClient(configPath)
	if err != nil {
		return nil, err
	}
	seeds, err := dirclient.SeedsFromConfig(cfg.Seeds)
	if err != nil {
		return nil, err
	}
	log := newLogger(stderr, cfg.SlogLevel())
	sel, err := path.NewSelector(path.Options{DataDir: cfg.DataDir, GuardLifetime: cfg.GuardLifetime.D(), AllowSameSubnet: cfg.LocalTestnet, Logger: log})
	if err != nil {
		return nil, err
	}
	// The directory comes through the guard's cache, and the guard from
	// the directory's view: dc is set below, before any circuit is built.
	var dc *dirclient.Client
	cl := client.New(client.Options{View: func() *directory.View { return dc.View() }, Paths: sel,
		CircuitLifetime: cfg.CircuitLifetime.D(), Logger: log})
	dc, err = dirclient.New(dirclient.Options{Seeds: seeds, CacheDir: cfg.DataDir, Logger: log, DirCache: cl.DirTransport()})
	if err != nil {
		return nil, err
	}
	// The client's own record of storage relays that lost shards it
	// stored (shard/SPEC.md §8.3): a damaged one is started afresh, since
	// all it costs is what was learned.
	relPath := filepath.Join(cfg.DataDir, transfer.ReliabilityFile)
	rel, err := transfer.LoadReliability(relPath, nil)
	if err != nil {
		log.Warn("starting the storage relays' record afresh", "err", err)
		rel = transfer.NewReliability(relPath, nil)
	}
	n := &network{dc: dc, cl: cl, net: &transfer.Net{Client: cl, Paths: sel, View: dc.View, Log: log, Reliability: rel}}
	// The cache first: its view lets the fetch go through the guard, with
	// If-None-Match, and its documents are the floor no seed or cache may
	// roll back (directory/SPEC.md §8).
	if _, err := dc.LoadCache(); err != nil && !errors.Is(err, dirclient.ErrNoCache) {
		log.Info("not using the cached consensus", "err", err)
	}
	if _, err := dc.Fetch(ctx); err != nil {
		if dc.View() == nil {
			n.close()
			return nil, &cliError{msg: "no usable consensus", err: err, hint: "check that the seeds in " + configPath + " are running"}
		}
		log.Warn("using the cached consensus; it could not be refreshed", "err", err)
	}
	return n, nil
}

func (n *network) close() {
	n.cl.Close()
	n.dc.Close()
}

// paramsFor picks the erasure code the network can hold: one relay per
// shard of a segment (shard/SPEC.md §2.2).
func paramsFor(v *directory.View) (shard.Params, error) {
	storage := 0
	for _, e := range v.Usable(time.Now()) {
		if e.Flags&directory.FlagStorage != 0 {
			storage++
		}
	}
	switch {
	case storage >= shard.DefaultParams.N():
		return shard.DefaultParams, nil
	case storage >= shard.TestnetParams.N():
		return shard.TestnetParams, nil
	}
	return shard.Params{}, fmt.Errorf("the network lists %d storage relays; a share needs at least %d", storage, shard.TestnetParams.N())
}

func runShare(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("share", stderr)
	cfgPath := clientConfigFlag(fs)
	ttl := ttlFlag(fs)
	showQR := fs.Bool("qr", false, "also draw the link as a QR code on stderr")
	if err := parseFlags(fs, reorderFlags(fs, args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr("veil share [--config client.toml] [--ttl 168h] [--qr] FILE", "share: want one file to share")
	}
	bucket, err := checkTTL("share", *ttl, stderr)
	if err != nil {
		return err
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return &cliError{msg: "share", err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return &cliError{msg: "share", err: err}
	}
	ctx, stop := signalContext()
	defer stop()
	n, err := openNetwork(ctx, *cfgPath, stderr)
	if err != nil {
		return err
	}
	defer n.close()
	p, err := paramsFor(n.dc.View())
	if err != nil {
		return &cliError{msg: "share", err: err}
	}
	bar := newProgress(stderr, "share")
	link, err := n.net.Share(ctx, f, st.Size(), p, bucket, bar.update)
	bar.finish(err == nil)
	if err != nil {
		hint := ""
		if errors.Is(err, transfer.ErrNoRelayLeft) {
			hint = "storage relays refused shards or could not be reached, and every other one was already offered a shard of the same segment, which no relay ever holds two of; try again later, when relays have room"
		}
		return &cliError{msg: "share", err: err, hint: hint}
	}
	if *showQR {
		if err := writeQR(stderr, link.String()); err != nil {
			return &cliError{msg: "share: drawing the QR code", err: err}
		}
	}
	fmt.Fprintln(stdout, link.String())
	return nil
}

func runFetch(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fetch", stderr)
	cfgPath := clientConfigFlag(fs)
	out := fs.String("o", "", "where to write the file")
	if err := parseFlags(fs, reorderFlags(fs, args)); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 1 {
		return usageErr("veil fetch [--config client.toml] LINK -o FILE   (or the link on standard input)", "fetch: want -o and a link")
	}
	link, err := linkArg(fs, "fetch")
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	n, err := openNetwork(ctx, *cfgPath, stderr)
	if err != nil {
		return err
	}
	defer n.close()
	// The file is written to a temporary file beside OUT and renamed only
	// once every byte is verified, so OUT never holds a partial file. A
	// fetch that was killed left its own behind: remove those first.
	removeStaleParts(*out)
	tmp, err := createPart(*out)
	if err != nil {
		return &cliError{msg: "fetch", err: err}
	}
	defer os.Remove(tmp.Name())
	bar := newProgress(stderr, "fetch")
	err = n.net.Fetch(ctx, link, tmp, bar.update)
	bar.finish(err == nil)
	if err == nil {
		err = tmp.Sync()
	}
	// Renamed while still open and locked: closed first, it could be taken
	// for a killed fetch's file and removed before the rename.
	if err == nil {
		err = os.Rename(tmp.Name(), *out)
	}
	// Once Sync has succeeded, Close has nothing left to report.
	tmp.Close()
	if err == nil {
		err = durable.SyncDir(filepath.Dir(*out))
	}
	if err != nil {
		var se *shard.ShardsError
		hint := ""
		switch {
		case errors.Is(err, path.ErrNoGuard):
			hint = noGuardHint
		case errors.As(err, &se):
			hint = "too many storage relays are gone or damaged; run veil repair while enough remain"
		}
		return &cliError{msg: "fetch", err: err, hint: hint}
	}
	return nil
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

// removeStaleParts removes the temporary files that fetches to out left
// when they were killed: those no running fetch holds locked. It touches
// only regular files named as createPart names them, and leaves any it
// cannot open or lock.
func removeStaleParts(out string) {
	dir, prefix := filepath.Dir(out), partPrefix(out)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		digits, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || digits == "" || strings.Trim(digits, "0123456789") != "" || !e.Type().IsRegular() {
			continue
		}
		name := filepath.Join(dir, e.Name())
		f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			// Removed while locked, so no fetch can be starting on it.
			os.Remove(name)
		}
		f.Close()
	}
}

// noGuardHint explains a fetch or repair that could not reach a storage
// relay because it is the client's one usable guard (relay/path SPEC.md
// §1.1): the shards are not lost.
const noGuardHint = "a relay holding a needed shard is your only kept guard that is up, and a circuit may not start and end at one relay; try again once another of your guards is back (a guard that stays down is replaced after a week)"

// ttlFlag is --ttl: how long relays keep the shards a command stores.
func ttlFlag(fs *flag.FlagSet) *time.Duration {
	return fs.Duration("ttl", shard.DefaultTTL, "how long relays keep the shards stored, rounded up to one of "+ttlBuckets())
}

// ttlBuckets lists the public TTLs in hours, as --ttl takes them.
func ttlBuckets() string {
	var b []string
	for _, d := range shard.TTLBuckets {
		b = append(b, hours(d))
	}
	return strings.Join(b, ", ")
}

// hours writes a whole number of hours as --ttl takes it ("72h"), and
// anything else as time.Duration does.
func hours(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// checkTTL returns the public TTL a command stores shards for: --ttl
// rounded up to its bucket (shard/SPEC.md §8.2), with a note on stderr
// when that changes it, so the sharer knows how long the file stays.
func checkTTL(cmd string, ttl time.Duration, stderr io.Writer) (time.Duration, error) {
	if ttl <= 0 {
		return 0, usageErr("for example --ttl 72h", "%s: --ttl must be positive", cmd)
	}
	b, err := shard.BucketTTL(ttl)
	if err != nil {
		last := shard.TTLBuckets[len(shard.TTLBuckets)-1]
		return 0, usageErr("for example --ttl "+hours(last), "%s: --ttl %s: relays keep shards at most %s", cmd, hours(ttl), hours(last))
	}
	if b != ttl {
		fmt.Fprintf(stderr, "veil: note: --ttl %s is kept as %s, the next of the TTLs every share uses (%s), so that it does not set this share apart\n",
			hours(ttl), hours(b), ttlBuckets())
	}
	return b, nil
}

// clientConfigFlag is --config for the client commands. Without it they
// use $VEIL_CONFIG, then the user's config directory, so that `veil share
// FILE` works as DESIGN.md writes it.
func clientConfigFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("VEIL_CONFIG")
	if def == "" {
		if dir, err := os.UserConfigDir(); err == nil {
			def = filepath.Join(dir, "veil", "client.toml")
		}
	}
	return fs.String("config", def, "client config file (default: $VEIL_CONFIG, else veil/client.toml in the user config directory)")
}

// linkArg reads the link from the one argument or, if there is none or it
// is "-", from standard input, so it need not show in the process list.
func linkArg(fs *flag.FlagSet, cmd string) (*shard.Link, error) {
	text := ""
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		text = fs.Arg(0)
	} else {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 1024))
		if err != nil {
			return nil, &cliError{msg: cmd + ": reading the link", err: err}
		}
		text = string(b)
	}
	link, err := shard.ParseLink(strings.TrimSpace(text))
	if err != nil {
		return nil, &cliError{msg: cmd, err: err, hint: "copy the whole veil: link, exactly as share printed it"}
	}
	return link, nil
}

// reorderFlags moves flags before the positional arguments, so that
// `veil fetch LINK -o OUT` works as DESIGN.md writes it. A flag takes the
// next argument as its value unless it is boolean or written name=value.
func reorderFlags(fs *flag.FlagSet, args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			rest = append(rest, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				continue
			}
		}
		if i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return append(flags, rest...)
}
