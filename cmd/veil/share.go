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
	"time"

	"veil/conf"
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

// openNetwork loads the client config and the consensus. Its log goes to
// logTo: a progress, so that log lines and the bar do not mix.
func openNetwork(ctx context.Context, configPath string, logTo io.Writer) (*network, error) {
	cfg, err := conf.LoadClient(configPath)
	if err != nil {
		return nil, err
	}
	seeds, err := dirclient.SeedsFromConfig(cfg.Seeds)
	if err != nil {
		return nil, err
	}
	log := newLogger(logTo, cfg.SlogLevel())
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
		return usageErr("veil share [--config client.toml] [--ttl 168h] [--qr] PATH", "share: want one file or directory to share")
	}
	bucket, err := checkTTL("share", *ttl, stderr)
	if err != nil {
		return err
	}
	src, err := openSource(fs.Arg(0), stderr)
	if err != nil {
		return &cliError{msg: "share", err: err}
	}
	defer src.close()
	ctx, stop := signalContext()
	defer stop()
	// Logs go through the bar, which erases itself before a log line.
	bar := newProgress(stderr, "share")
	defer bar.finish(false)
	n, err := openNetwork(ctx, *cfgPath, bar)
	if err != nil {
		return interruptedOr(ctx, err)
	}
	defer n.close()
	p, err := paramsFor(n.dc.View())
	if err != nil {
		return &cliError{msg: "share", err: err}
	}
	link, err := n.net.Share(ctx, src.r, src.size, src.meta, p, bucket, bar.update)
	bar.finish(err == nil)
	if err != nil {
		hint := ""
		if errors.Is(err, transfer.ErrNoRelayLeft) {
			hint = "storage relays refused shards or could not be reached, and every other one was already offered a shard of the same segment, which no relay ever holds two of; try again later, when relays have room"
		}
		return interruptedOr(ctx, &cliError{msg: "share", err: err, hint: hint})
	}
	if *showQR {
		if err := writeQR(stderr, link.String()); err != nil {
			return &cliError{msg: "share: drawing the QR code", err: err}
		}
	}
	fmt.Fprintln(stdout, link.String())
	return nil
}

// shareSource is what a share reads: a file's bytes, or a directory
// packed as it goes (tree.go), with what the manifest says of them.
type shareSource struct {
	r     io.Reader
	size  int64
	meta  shard.Meta
	close func()
}

// openSource opens the file or directory at p for sharing under its own
// name (shard/SPEC.md §5.1).
func openSource(p string, stderr io.Writer) (*shareSource, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	name := shareName(p, stderr)
	switch {
	case st.IsDir():
		entries, err := scanTree(p)
		if err != nil {
			return nil, err
		}
		size, err := treeSize(entries)
		if err != nil {
			return nil, err
		}
		// The packer is this source's: close stops it (its next write
		// fails once the reader is closed) and waits for it.
		pr, pw := io.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			pw.CloseWithError(writeTree(pw, entries, openEntry))
		}()
		closeFn := func() { pr.Close(); <-done }
		return &shareSource{r: pr, size: size, meta: shard.Meta{Content: shard.ContentTree, Name: name}, close: closeFn}, nil
	case st.Mode().IsRegular():
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		return &shareSource{r: f, size: st.Size(), meta: shard.Meta{Content: shard.ContentFile, Name: name}, close: func() { f.Close() }}, nil
	}
	return nil, fmt.Errorf("%s is a %s: veil shares a regular file or a directory", p, fileKind(st.Mode().Type()))
}

// shareName is the name a share of p carries: its last element. A name
// no manifest may carry (a control character, over 255 bytes) is left
// out, and the fetcher must then give -o; stderr says so.
func shareName(p string, stderr io.Writer) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return ""
	}
	name := filepath.Base(abs)
	if err := shard.CheckName(name); err != nil {
		fmt.Fprintf(stderr, "veil: note: the share carries no name (%v): whoever fetches it must give -o\n", err)
		return ""
	}
	return name
}

// errInterrupted ends a command stopped by SIGINT (Ctrl-C) or SIGTERM;
// run says "interrupted" and exits 130, as shells expect.
var errInterrupted = errors.New("interrupted")

// interruptedOr is errInterrupted if a signal ended ctx, else err: what a
// cancelled transfer reports ("context canceled") says nothing useful.
func interruptedOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errInterrupted
	}
	return err
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
