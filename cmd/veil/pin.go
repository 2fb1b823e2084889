package main

import (
	"fmt"
	"io"
	"net/netip"

	"veil/conf"
	"veil/onion/keys"
)

// runConfigPin prints the [[seed]] table a client needs to trust the seed
// configured in file: its nickname, its directory URL and its node ID, read
// from the seed's data_dir (the keys are made there if the seed has not
// started yet, as it would make them). Appended to a client config, it
// pins the seed with nothing copied by hand: the README's by-hand network
// runs `veil config pin seed.toml >> client.toml`.
func runConfigPin(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("config pin", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr("veil config pin seed.toml >> client.toml", "config pin: want one FILE, a seed's config")
	}
	file := fs.Arg(0)
	cfg, err := conf.LoadSeed(file)
	if err != nil {
		return err
	}
	bound, err := netip.ParseAddrPort(cfg.DirAddr)
	if err != nil {
		return fmt.Errorf("config pin: %s: dir_addr: %w", file, err)
	}
	dir, err := conf.Advertised(bound, cfg.DirAdvertise)
	if err != nil || dir.Port() == 0 {
		return &cliError{msg: fmt.Sprintf("config pin: %s: no directory address to publish (dir_addr %s)", file, cfg.DirAddr), err: err,
			hint: "set dir_advertise to the address clients reach the seed at"}
	}
	store, err := keys.Open(cfg.DataDir, keys.Options{})
	if err != nil {
		return fmt.Errorf("config pin: %s: %w", file, err)
	}
	_, err = fmt.Fprintf(stdout, "\n[[seed]]\nname = %q\ndir_url = %q\nidentity = %q\n",
		cfg.Nickname, "http://"+dir.String(), store.Identity().ID().String())
	return err
}
