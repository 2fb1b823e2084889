package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"time"

	"veil/conf"
	"veil/directory/dirclient"
)

// statusTimeout bounds how long `veil status` waits for the seeds.
const statusTimeout = 20 * time.Second

// runStatus prints the client's view of the network: fetched fresh from
// the pinned seeds, or from the cache when none answers. With --role relay
// or seed it reports on that node instead (opstatus.go).
func runStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	path := clientConfigFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	role := fs.String("role", "client", "whose config --config is: client (the network as this client sees it), or relay or seed (this node as the seeds see it)")
	pins := fs.String("pins", "", "with --role relay or seed: a client config whose [[seed]] tables name more seeds to ask")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *role != "client" {
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "config" })
		if !set {
			return usageErr("veil status --role "+*role+" --config "+*role+".toml", "status: --role %s needs --config FILE, the %s's config", *role, *role)
		}
		return runOperatorStatus(*role, *path, *pins, *asJSON, stdout, stderr)
	}
	cfg, err := conf.LoadClient(*path)
	if err != nil {
		return err
	}
	seeds, err := dirclient.SeedsFromConfig(cfg.Seeds)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dc, err := dirclient.New(dirclient.Options{Seeds: seeds, CacheDir: cfg.DataDir, Logger: log})
	if err != nil {
		return err
	}
	defer dc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	// The cache lets status answer offline; a fetch then brings it up to
	// date where the seeds answer.
	cached, cacheErr := dc.LoadCache()
	view, err := dc.Fetch(ctx)
	if err != nil {
		if cached == nil {
			return &cliError{msg: "status: no usable consensus", err: errors.Join(err, cacheErr),
				hint: "check that the seeds in " + *path + " are running and that their identities are right"}
		}
		log.Warn("seeds did not answer; showing the cached view", "err", err)
		return dirclient.WriteCachedStatus(stdout, cached, seeds, time.Now(), *asJSON)
	}
	return dirclient.WriteStatus(stdout, view, seeds, time.Now(), *asJSON)
}
