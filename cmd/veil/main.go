// Command veil is the one binary of the veil anonymizing overlay: relay,
// directory seed, SOCKS5 proxy and anonymous file sharing. The main only
// parses the command line and hands over to the packages.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

const usage = `veil — an anonymizing overlay router

usage: veil COMMAND [flags]

commands:
  seed     --config FILE      run a directory seed
  relay    --config FILE      run a relay
  proxy    --config FILE      run the local SOCKS5 proxy
  share    [--config FILE] [--ttl 168h] [--qr] PATH
                              share a file or a directory; prints its link
  fetch    [--config FILE] [-o PATH] [--force] LINK
                              fetch a shared file or directory under its
                              name, or at PATH (LINK "-" or none: stdin)
  repair   [--config FILE] [--ttl 168h] LINK
                              re-create a share's missing shards
  status   [--config FILE] [--json] [--role client|relay|seed] [--pins FILE]
                              show the client's view of the network, or with
                              --role relay|seed that node as the seeds see it
  testnet  --dir DIR [--relays N] [--seeds M]
                              run a whole network on this machine
  config   init --role seed|relay|client
                              print a commented default config
  config   check --role seed|relay|client FILE
                              check a config file
  config   pin SEEDFILE       print the [[seed]] table that pins this seed,
                              for a client config
  version                     print the version

--config defaults to $VEIL_CONFIG, then veil/client.toml in the user
config directory, for the client commands (share, fetch, repair, status).

example:
  veil config init --role relay > relay.toml
`

// command runs one subcommand with its arguments.
type command func(args []string, stdout, stderr io.Writer) error

func commands() map[string]command {
	return map[string]command{
		"seed":    runSeed,
		"relay":   runRelay,
		"proxy":   runProxy,
		"share":   runShare,
		"fetch":   runFetch,
		"repair":  runRepair,
		"status":  runStatus,
		"testnet": runTestnet,
		"config":  runConfig,
		"version": runVersion,
	}
}

func main() {
	progName = os.Args[0]
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// progName is how this binary was invoked ("veil", "bin/veil"), for the
// commands it prints for the user to run.
var progName = "veil"

// run is main without the process: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || (args[0] == "help" && len(args) == 1) {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "--version", "-V":
		args = []string{"version"}
	}
	if len(args) == 2 && args[0] == "help" && args[1] == "--man" {
		if err := writeManPage(stdout); err != nil {
			printError(stderr, err)
			return 1
		}
		return 0
	}
	if args[0] == "help" && len(args) == 2 {
		// veil help SUB is veil SUB -h.
		args = []string{args[1], "-h"}
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		printError(stderr, &cliError{
			msg:  fmt.Sprintf("unknown command %q", args[0]),
			hint: "run veil --help for the list of commands",
		})
		return 2
	}
	if err := cmd(args[1:], stdout, stderr); err != nil {
		var help *helpError
		if errors.As(err, &help) {
			fmt.Fprint(stdout, help.text)
			return 0
		}
		if errors.Is(err, errInterrupted) {
			// Ctrl-C is the user's own doing, not an error: 128 + SIGINT.
			fmt.Fprintln(stderr, "veil: interrupted")
			return 130
		}
		var logged *loggedError
		if errors.As(err, &logged) {
			return 1
		}
		printError(stderr, err)
		var ue *usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}
