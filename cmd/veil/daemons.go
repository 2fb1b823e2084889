package main

import (
	"fmt"
	"io"
	"log/slog"

	"veil/conf"
	"veil/onion"
	"veil/onion/keys"
)

// configFlag parses `--config FILE` for a daemon subcommand.
func configFlag(name string, args []string, stderr io.Writer) (string, error) {
	fs := newFlags(name, stderr)
	path := fs.String("config", "", "config file (make one with: veil config init --role "+name+")")
	if err := parseFlags(fs, args); err != nil {
		return "", err
	}
	if *path == "" {
		return "", usageErr(fmt.Sprintf("veil config init --role %s > %s.toml, then veil %s --config %s.toml", name, name, name, name),
			"%s: --config FILE is required", name)
	}
	return *path, nil
}

// openKeys creates the node's keys on first start, or loads and checks
// them, and says who the node is.
func openKeys(dir string, opts keys.Options, stderr io.Writer) (*keys.Store, error) {
	store, err := keys.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cur, _ := store.OnionKeys()
	log.Info("node keys ready", "node", store.Identity().ID().Short(), "id", store.Identity().ID().String(),
		"onion_key_created", cur.Created().UTC())
	return store, nil
}

func runSeed(args []string, stdout, stderr io.Writer) error {
	path, err := configFlag("seed", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := conf.LoadSeed(path)
	if err != nil {
		return err
	}
	if _, err := openKeys(cfg.DataDir, keys.Options{}, stderr); err != nil {
		return err
	}
	return &cliError{msg: "seed: the directory seed is not built yet", hint: "it arrives with issue 3; keys and config are ready"}
}

func runRelay(args []string, stdout, stderr io.Writer) error {
	path, err := configFlag("relay", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := conf.LoadRelay(path)
	if err != nil {
		return err
	}
	opts := keys.Options{RotateEvery: cfg.OnionKeyRotation.D(), Grace: cfg.OnionKeyGrace.D()}
	if _, err := openKeys(cfg.DataDir, opts, stderr); err != nil {
		return err
	}
	return &cliError{msg: "relay: the relay daemon is not built yet", hint: "it arrives with issue 4; keys and config are ready"}
}

func runProxy(args []string, stdout, stderr io.Writer) error {
	path, err := configFlag("proxy", args, stderr)
	if err != nil {
		return err
	}
	if _, err := conf.LoadClient(path); err != nil {
		return err
	}
	return &cliError{msg: "proxy: the SOCKS5 proxy is not built yet", hint: "it arrives with issue 4"}
}

// notBuilt is a subcommand that exists in the interface but not yet in the
// code: it says so and fails.
func notBuilt(name, why string) command {
	return func(args []string, stdout, stderr io.Writer) error {
		return &cliError{msg: fmt.Sprintf("%s: not built yet", name), hint: why}
	}
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	fmt.Fprintf(stdout, "veil %s (onion protocol %d)\n", version, onion.ProtocolVersion)
	return nil
}
