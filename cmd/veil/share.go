package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	dc, err := dirclient.New(dirclient.Options{Seeds: seeds, CacheDir: cfg.DataDir, Logger: log})
	if err != nil {
		return nil, err
	}
	if _, err := dc.Fetch(ctx); err != nil {
		if _, cerr := dc.LoadCache(); cerr != nil {
			dc.Close()
			return nil, &cliError{msg: "no usable consensus", err: err, hint: "check that the seeds in " + configPath + " are running"}
		}
	}
	sel, err := path.NewSelector(path.Options{DataDir: cfg.DataDir, GuardLifetime: cfg.GuardLifetime.D(), AllowSameSubnet: cfg.LocalTestnet, Logger: log})
	if err != nil {
		dc.Close()
		return nil, err
	}
	cl := client.New(client.Options{View: dc.View, Paths: sel, CircuitLifetime: cfg.CircuitLifetime.D(), Logger: log})
	return &network{dc: dc, cl: cl, net: &transfer.Net{Client: cl, Paths: sel, View: dc.View, Log: log}}, nil
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

// progressBar draws bytes, rate and time left on stderr, at most five
// times a second.
type progressBar struct {
	w     io.Writer
	what  string
	total int64
	start time.Time

	mu   sync.Mutex // guards last
	last time.Time
}

func newProgressBar(w io.Writer, what string, total int64) *progressBar {
	return &progressBar{w: w, what: what, total: total, start: time.Now()}
}

func (p *progressBar) update(done int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < 200*time.Millisecond && done < p.total {
		return
	}
	p.last = now
	el := now.Sub(p.start).Seconds()
	rate := float64(done) / max(el, 1e-3)
	left := "?"
	if rate > 0 {
		left = time.Duration(float64(p.total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(done) / float64(p.total)
	}
	width := 30
	filled := int(pct / 100 * float64(width))
	fmt.Fprintf(p.w, "\r%s [%s%s] %5.1f%%  %s of %s  %s/s  %s left ", p.what,
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), pct, mb(done), mb(p.total), mb(int64(rate)), left)
}

func (p *progressBar) finish() { fmt.Fprintln(p.w) }

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func runShare(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("share", stderr)
	cfgPath := fs.String("config", "", "client config file")
	ttl := fs.Duration("ttl", 7*24*time.Hour, "how long relays keep the shards")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" || fs.NArg() != 1 {
		return usageErr("veil share --config client.toml FILE", "share: want --config FILE and one file to share")
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
	bar := newProgressBar(stderr, "share", st.Size())
	link, err := n.net.Share(ctx, f, st.Size(), p, *ttl, bar.update)
	bar.finish()
	if err != nil {
		return &cliError{msg: "share", err: err}
	}
	fmt.Fprintln(stdout, link.String())
	return nil
}

func runFetch(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fetch", stderr)
	cfgPath := fs.String("config", "", "client config file")
	out := fs.String("o", "", "where to write the file")
	if err := parseFlags(fs, reorderFlags(args)); err != nil {
		return err
	}
	if *cfgPath == "" || *out == "" || fs.NArg() > 1 {
		return usageErr("veil fetch --config client.toml -o FILE LINK   (or the link on standard input)", "fetch: want --config, -o and a link")
	}
	text := ""
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		text = fs.Arg(0)
	} else {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 1024))
		if err != nil {
			return &cliError{msg: "fetch: reading the link", err: err}
		}
		text = string(b)
	}
	link, err := shard.ParseLink(strings.TrimSpace(text))
	if err != nil {
		return &cliError{msg: "fetch", err: err, hint: "copy the whole veil: link, exactly as share printed it"}
	}
	ctx, stop := signalContext()
	defer stop()
	n, err := openNetwork(ctx, *cfgPath, stderr)
	if err != nil {
		return err
	}
	defer n.close()
	// The file is written to a temporary file beside OUT and renamed only
	// once every byte is verified, so OUT never holds a partial file.
	tmp, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".part-*")
	if err != nil {
		return &cliError{msg: "fetch", err: err}
	}
	defer os.Remove(tmp.Name())
	bar := newProgressBar(stderr, "fetch", 0)
	err = n.net.Fetch(ctx, link, tmp, func(done int64) {
		if bar.total < done {
			bar.total = done
		}
		bar.update(done)
	})
	bar.finish()
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), *out)
	}
	if err == nil {
		err = durable.SyncDir(filepath.Dir(*out))
	}
	if err != nil {
		var se *shard.ShardsError
		hint := ""
		if errors.As(err, &se) {
			hint = "too many storage relays are gone or damaged; run veil repair while enough remain"
		}
		return &cliError{msg: "fetch", err: err, hint: hint}
	}
	return nil
}

// reorderFlags moves flags before the positional link, so that
// `veil fetch LINK -o OUT` works as the README shows.
func reorderFlags(args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") && a != "-" {
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		rest = append(rest, a)
	}
	return append(flags, rest...)
}
