package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// manCommands is the order of the commands in the manual: the order of
// the top-level usage.
var manCommands = []string{"seed", "relay", "proxy", "share", "fetch", "repair", "status", "testnet", "config init", "config check", "version"}

// writeManPage writes veil(1) in roff, built from the command line's own
// help: the top-level usage and each command's -h, so the manual cannot
// drift from what the binary says (`veil help --man`, which `make
// install` runs).
func writeManPage(w io.Writer) error {
	var b strings.Builder
	// SOURCE_DATE_EPOCH makes the page reproducible, as packagers expect.
	when := time.Now()
	if sec, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		when = time.Unix(sec, 0)
	}
	date := when.UTC().Format("2006-01-02")
	fmt.Fprintf(&b, ".TH VEIL 1 %s \"veil %s\" \"User Commands\"\n", date, roffEscape(version))
	b.WriteString(".SH NAME\nveil \\- an anonymizing overlay router: relay, directory seed, SOCKS5 proxy and anonymous file sharing\n")
	b.WriteString(".SH SYNOPSIS\n.B veil\n.I COMMAND\n[\\fIflags\\fR]\n")
	b.WriteString(".SH DESCRIPTION\n")
	b.WriteString(roffPara("One binary runs every part of a veil network. Relays gossip membership, carry three-hop onion circuits with hybrid X25519 and ML-KEM-768 handshakes, act as exits under an exit policy and store encrypted shards. Directory seeds are the bootstrap points that relays join and that sign the consensus clients trust. The proxy is a local SOCKS5 front door whose streams leave through a three-hop circuit, with names resolved at the exit. share and fetch move files anonymously: encrypted, cut with Reed-Solomon into shards, each shard over its own circuit to a different relay."))
	b.WriteString(".PP\nThe top-level usage, as veil --help prints it:\n")
	b.WriteString(roffVerbatim(usage))
	b.WriteString(".SH COMMANDS\n")
	for _, name := range manCommands {
		var out bytes.Buffer
		args := append(strings.Fields(name), "-h")
		if code := run(args, &out, io.Discard); code != 0 {
			return fmt.Errorf("manual: veil %s -h exited %d", name, code)
		}
		fmt.Fprintf(&b, ".SS %s\n", roffEscape(name))
		b.WriteString(roffVerbatim(out.String()))
	}
	b.WriteString(".SH SIGNALS\n")
	b.WriteString(".TP\n.B SIGHUP\nA relay, seed or proxy reloads its config file; what cannot change without a restart is named in the log.\n")
	b.WriteString(".TP\n.B SIGTERM, SIGINT\nA relay drains: it takes no new circuits, leaves the network and waits up to shutdown_wait for its streams. A second signal ends it at once.\n")
	b.WriteString(".SH FILES\n")
	b.WriteString(".TP\n.I data_dir\nKeys, state and stored shards of a relay or seed (config key data_dir); back up its keys directory to keep the node's identity. A lock file keeps a second process out.\n")
	b.WriteString(".TP\n.I $VEIL_CONFIG\nThe client config for share, fetch, repair and status, before veil/client.toml in the user config directory.\n")
	b.WriteString(".SH EXIT STATUS\n0 on success, 1 on an error, 2 on a usage error, 130 when interrupted.\n")
	b.WriteString(".SH SEE ALSO\n.BR systemd.service (5),\n.BR curl (1)\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// roffEscape makes s safe in running roff text: backslashes doubled, and
// a leading dot or quote (a request) and hyphens escaped.
func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffPara is one filled paragraph.
func roffPara(s string) string { return roffEscape(s) + "\n" }

// roffVerbatim is text shown as is, in a no-fill block.
func roffVerbatim(s string) string {
	var b strings.Builder
	b.WriteString(".PP\n.nf\n.RS 4\n")
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if line == "" {
			b.WriteString(".sp\n")
			continue
		}
		b.WriteString(roffEscape(line) + "\n")
	}
	b.WriteString(".RE\n.fi\n")
	return b.String()
}
