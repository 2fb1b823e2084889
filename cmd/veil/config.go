package main

import (
	"fmt"
	"io"

	"veil/conf"
)

// runConfig handles `veil config init`, `veil config check` and `veil
// config pin` (pin.go).
func runConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErr("veil config init --role relay > relay.toml", "config: missing subcommand (init or check)")
	}
	switch args[0] {
	case "-h", "--help", "help":
		return &helpError{text: "usage: veil config init|check [flags]\n\n" + synopsis("config") +
			"\nrun veil config init -h or veil config check -h for their flags\n"}
	case "init":
		fs := newFlags("config init", stderr)
		role := fs.String("role", "", "seed, relay or client")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 0 {
			return usageErr("", "config init: unexpected argument %q", fs.Arg(0))
		}
		text, err := conf.Template(*role)
		if err != nil {
			return usageErr("use --role seed, --role relay or --role client", "config init: %v", err)
		}
		_, err = io.WriteString(stdout, text)
		return err
	case "check":
		fs := newFlags("config check", stderr)
		role := fs.String("role", "", "seed, relay or client")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usageErr("veil config check --role relay relay.toml", "config check: want one FILE")
		}
		if err := loadAny(*role, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: ok\n", fs.Arg(0))
		return nil
	case "pin":
		return runConfigPin(args[1:], stdout, stderr)
	default:
		return usageErr("veil config init --role relay", "config: unknown subcommand %q", args[0])
	}
}

// loadAny loads and checks a config of the given role.
func loadAny(role, path string) error {
	var err error
	switch role {
	case "seed":
		_, err = conf.LoadSeed(path)
	case "relay":
		_, err = conf.LoadRelay(path)
	case "client":
		_, err = conf.LoadClient(path)
	default:
		return usageErr("use --role seed, --role relay or --role client", "unknown role %q", role)
	}
	return err
}
