package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"veil/conf"
	"veil/directory"
	"veil/directory/dirclient"
	"veil/relay/path"
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
		if err := dirclient.WriteCachedStatus(stdout, cached, seeds, time.Now(), *asJSON); err != nil {
			return err
		}
		return writeCircuitStatus(stdout, cached, cfg, *asJSON)
	}
	if err := dirclient.WriteStatus(stdout, view, seeds, time.Now(), *asJSON); err != nil {
		return err
	}
	return writeCircuitStatus(stdout, view, cfg, *asJSON)
}

// writeCircuitStatus says whether a circuit can be drawn from v under
// cfg's rules and, if not, why: the line the proxy logs at info when it
// builds none (relay/client's whyNoCircuit), so the two agree. A fresh
// selector draws it, without the client's guard file, which status must
// not change; the reasons it finds (too few relays, no Guard or Exit
// flag, one /16 without local_testnet) are the network's, not the guard's.
func writeCircuitStatus(w io.Writer, v *directory.View, cfg *conf.Client, asJSON bool) error {
	if asJSON {
		return nil // the JSON object is WriteStatus's, and complete
	}
	sel, err := path.NewSelector(path.Options{AllowSameSubnet: cfg.LocalTestnet})
	if err != nil {
		return err
	}
	if _, err := sel.Path(v, statusDest); err != nil {
		_, err = fmt.Fprintf(w, "\ncircuits: none can be built: %v\n", err)
		return err
	}
	_, err = fmt.Fprintf(w, "\ncircuits: a three-hop path can be drawn\n")
	return err
}

// statusDest is the destination writeCircuitStatus draws a path to: any
// name on port 443, as the proxy's spare circuits are drawn.
var statusDest = path.Destination{Host: "status.invalid", Port: 443}
