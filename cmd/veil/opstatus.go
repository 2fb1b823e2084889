package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"veil/conf"
	"veil/directory"
	"veil/directory/dirclient"
	"veil/directory/nodestatus"
	"veil/onion/keys"
)

// metricsTimeout bounds the read of a running node's /metrics.
const metricsTimeout = 5 * time.Second

// operatorTarget is what `veil status --role relay|seed` reports on.
type operatorTarget struct {
	id      keys.NodeID
	seeds   []dirclient.Seed // the seeds to ask
	cache   string           // a data_dir whose consensus/ cache to fall back on, or ""
	metrics string           // host:port of the node's /metrics, or ""
}

// runOperatorStatus prints what the seeds say about the relay or seed
// whose config is file, and what its /metrics say if it runs: whether it
// is listed, its flags, measured weight and reachability per seed and
// combined, uptime and traffic.
func runOperatorStatus(role, file, pins string, asJSON bool, stdout, stderr io.Writer) error {
	tgt, err := operatorTargetOf(role, file, pins)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	// No cache directory: what Held returns then is exactly what the
	// seeds answered now, and nothing is written into the node's data_dir.
	dc, err := dirclient.New(dirclient.Options{Seeds: tgt.seeds, Logger: log})
	if err != nil {
		return err
	}
	defer dc.Close()
	view, fetchErr := dc.Fetch(ctx)
	held, fromCache := dc.Held(), false
	if fetchErr != nil && !slices.ContainsFunc(held, func(c *directory.Consensus) bool { return c != nil }) {
		// No seed answered: the node's own cache, said to be one.
		cached, cacheErr := cachedView(tgt, log)
		if cached == nil {
			return &cliError{msg: "status: no seed answered and no cached consensus", err: errors.Join(fetchErr, cacheErr),
				hint: "check that the seeds in " + file + " are running and that their identities are right"}
		}
		log.Warn("no seed answered; showing the cached consensus", "err", fetchErr)
		view, held, fromCache = cached.View(), cached.Held(), true
		defer cached.Close()
	}
	now := time.Now()
	rep := nodestatus.Build(tgt.id, role, view, held, tgt.seeds, fromCache, now)
	if tgt.metrics == "" {
		rep.RunningErr = "no metrics_addr in " + file
	} else {
		mctx, mcancel := context.WithTimeout(context.Background(), metricsTimeout)
		defer mcancel()
		rep.Running, err = nodestatus.Scrape(mctx, &http.Client{Transport: &http.Transport{Proxy: nil}}, tgt.metrics, now)
		if err != nil {
			rep.RunningErr = "not running, or its metrics do not answer: " + err.Error()
		}
	}
	return rep.Write(stdout, asJSON)
}

// cachedView loads the consensus the node keeps in its data_dir (a
// relay's directory cache), or returns nil and why not.
func cachedView(tgt operatorTarget, log *slog.Logger) (*dirclient.Client, error) {
	if tgt.cache == "" {
		return nil, errors.New("status: this node keeps no consensus cache")
	}
	dc, err := dirclient.New(dirclient.Options{Seeds: tgt.seeds, CacheDir: tgt.cache, Logger: log})
	if err != nil {
		return nil, err
	}
	if _, err := dc.LoadCache(); err != nil && !slices.ContainsFunc(dc.Held(), func(c *directory.Consensus) bool { return c != nil }) {
		dc.Close()
		return nil, err
	}
	return dc, nil
}

// operatorTargetOf reads the node's config, its node ID from its data_dir
// (never creating keys) and the seeds to ask: a relay's dir_cache_seed
// tables, a seed itself; with pins, a client config's [[seed]] tables too.
func operatorTargetOf(role, file, pins string) (operatorTarget, error) {
	var tgt operatorTarget
	var dataDir string
	var pinned []conf.SeedPin
	switch role {
	case "relay":
		cfg, err := conf.LoadRelay(file)
		if err != nil {
			return tgt, err
		}
		dataDir, pinned, tgt.cache, tgt.metrics = cfg.DataDir, cfg.DirCacheSeeds, cfg.DataDir, cfg.MetricsAddr
	case "seed":
		cfg, err := conf.LoadSeed(file)
		if err != nil {
			return tgt, err
		}
		dataDir, tgt.metrics = cfg.DataDir, cfg.MetricsAddr
		id, err := keys.ReadNodeID(cfg.DataDir)
		if err != nil {
			return tgt, err
		}
		pinned = []conf.SeedPin{{Name: cfg.Nickname, DirURL: "http://" + cfg.DirAddr, Identity: id.String()}}
	default:
		return tgt, usageErr("veil status --role relay --config relay.toml", "status: unknown role %q: use client, relay or seed", role)
	}
	id, err := keys.ReadNodeID(dataDir)
	if err != nil {
		return tgt, err
	}
	tgt.id = id
	if pins != "" {
		client, err := conf.LoadClient(pins)
		if err != nil {
			return tgt, err
		}
		for _, p := range client.Seeds {
			if !slices.ContainsFunc(pinned, func(q conf.SeedPin) bool { return q.Identity == p.Identity }) {
				pinned = append(pinned, p)
			}
		}
	}
	if len(pinned) == 0 {
		return tgt, usageErr("add [[dir_cache_seed]] tables to "+file+", or give --pins client.toml to ask the seeds a client pins",
			"status: %s names no seed to ask", file)
	}
	if tgt.metrics != "" {
		if ap, err := netip.ParseAddrPort(tgt.metrics); err != nil || ap.Port() == 0 {
			tgt.metrics = "" // port 0: chosen at start, unknown here
		}
	}
	tgt.seeds, err = dirclient.SeedsFromConfig(pinned)
	return tgt, err
}
