package main

import (
	"fmt"
	"io"
	"time"

	"veil/relay/testnet"
)

// runTestnet starts a network on this machine and runs it until
// interrupted.
func runTestnet(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("testnet", stderr)
	dir := fs.String("dir", "", "directory for configs, keys, logs and testnet.json")
	relays := fs.Int("relays", testnet.DefaultRelays, "number of relays")
	seeds := fs.Int("seeds", testnet.DefaultSeeds, "number of seeds")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usageErr("veil testnet --dir testnet", "testnet: --dir DIR is required")
	}
	// 0 is not "the default": a circuit needs three relays, and a
	// network one seed.
	if *relays < 3 {
		return usageErr("veil testnet --dir testnet --relays 6", "testnet: --relays %d: a circuit needs at least 3 relays", *relays)
	}
	if *seeds < 1 {
		return usageErr("veil testnet --dir testnet --seeds 1", "testnet: --seeds %d: a network needs at least 1 seed", *seeds)
	}
	lock, err := lockDataDir("testnet", *dir, "testnet.lock")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	ctx, stop := signalContext()
	defer stop()
	start := time.Now()
	n, err := testnet.Start(ctx, testnet.Options{Dir: *dir, Relays: *relays, Seeds: *seeds,
		Logger: newLogger(stderr, 0)})
	if err != nil {
		return err
	}
	m := n.Manifest
	fmt.Fprintf(stdout, "veil testnet: %d seeds, %d relays and a SOCKS proxy on 127.0.0.1, usable after %.1fs\n",
		len(m.Seeds), len(m.Relays), time.Since(start).Seconds())
	fmt.Fprintf(stdout, "  SOCKS5:    %s\n", m.Socks)
	fmt.Fprintf(stdout, "  try:       curl --socks5-hostname %s %s\n", m.Socks, m.Web)
	fmt.Fprintf(stdout, "  status:    %s status --config %s\n", progName, m.ClientConfig)
	fmt.Fprintf(stdout, "  share:     export VEIL_CONFIG=%s; %s share FILE > link; %s fetch -o COPY - < link\n", m.ClientConfig, progName, progName)
	fmt.Fprintf(stdout, "  manifest:  %s/%s\n", *dir, testnet.ManifestName)
	fmt.Fprintf(stdout, "  logs:      %s/logs/\n", *dir)
	fmt.Fprintln(stdout, "press Ctrl-C to stop every process")
	return n.Wait(ctx)
}
