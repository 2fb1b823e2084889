package main

import (
	"errors"
	"fmt"
	"io"

	"veil/relay/path"
	"veil/shard"
	"veil/shard/transfer"
)

func runRepair(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("repair", stderr)
	cfgPath := clientConfigFlag(fs)
	ttl := ttlFlag(fs)
	if err := parseFlags(fs, reorderFlags(fs, args)); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usageErr("veil repair [--config client.toml] [--ttl 168h] LINK   (or the link on standard input)", "repair: want one link")
	}
	bucket, err := checkTTL("repair", *ttl, stderr)
	if err != nil {
		return err
	}
	link, err := linkArg(fs, "repair")
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	// Logs go through the bar, which erases itself before a log line.
	bar := newProgress(stderr, "repair")
	defer bar.finish(false)
	n, err := openNetwork(ctx, *cfgPath, bar)
	if err != nil {
		return interruptedOr(ctx, err)
	}
	defer n.close()
	rep, err := n.net.Repair(ctx, link, bucket, bar.update)
	bar.finish(err == nil)
	fmt.Fprintf(stdout, "checked %d segments: %d shards missing, %d stored again\n", rep.Segments, rep.Missing, rep.Restored)
	if rep.Restored > 0 {
		fmt.Fprintf(stdout, "stored again on %d relays, none holding another shard of the same segment\n", rep.Relays)
	}
	if rep.Dropped > 0 {
		fmt.Fprintf(stdout, "%d relays took a rebuilt shard and did not return it: passed over, and weighed down in %s\n", rep.Dropped, transfer.ReliabilityFile)
	}
	if rep.Damaged > 0 {
		fmt.Fprintf(stdout, "%d relays returned damaged shards: weighed down in %s\n", rep.Damaged, transfer.ReliabilityFile)
	}
	if err != nil {
		hint := ""
		var se *shard.ShardsError
		if errors.Is(err, path.ErrNoGuard) {
			hint = noGuardHint
		} else if errors.As(err, &se) {
			hint = "fewer than k shards of a segment remain: this part of the file is lost"
		} else if rep.Restored < rep.Missing {
			hint = "too few storage relays are listed to place every shard on its own relay; run repair again when more have joined"
		}
		return &cliError{msg: "repair", err: err, hint: hint}
	}
	return nil
}
