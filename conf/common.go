package conf

import (
	"log/slog"
	"os"
	"path/filepath"
)

// Common holds the keys every role has. It is embedded, so its keys sit at
// the top level of each file.
type Common struct {
	DataDir   string `toml:"data_dir"`   // keys and state; created with mode 0700 by Load
	Nickname  string `toml:"nickname"`   // 1 to 19 of [A-Za-z0-9], shown to others
	LogLevel  string `toml:"log_level"`  // debug, info, warn or error
	LogFormat string `toml:"log_format"` // text or json
}

// Log formats.
const (
	// LogText is slog's key=value lines, for people and grep.
	LogText = "text"
	// LogJSON is one JSON object per line, for log collectors.
	LogJSON = "json"
)

func defaultCommon(role string) Common {
	return Common{
		// Per user and per role, so a seed, a relay and a client on one
		// machine never share keys by accident.
		DataDir: DefaultDataDir(role),
		// Tor's convention for "the operator did not choose one"; it is
		// valid, so a default config starts, and obviously a placeholder.
		Nickname: "Unnamed",
		// info logs start, stop and trouble, and nothing per circuit, so a
		// default log neither fills disks nor records who did what.
		LogLevel: "info",
		// Lines a person reads on a terminal or in journalctl; a log
		// collector asks for json.
		LogFormat: LogText,
	}
}

// DefaultDataDir is $HOME/.veil/ROLE, or ./veil-ROLE when there is no home
// directory (as for some service accounts).
func DefaultDataDir(role string) string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "veil-" + role
	}
	return filepath.Join(home, ".veil", role)
}

// SlogLevel returns the log level as a slog.Level; it assumes a validated
// config and treats anything else as info.
func (c *Common) SlogLevel() slog.Level {
	switch c.LogLevel {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (c *Common) validate(p *problems) {
	if c.DataDir == "" {
		p.add(keyError("data_dir", "name a directory, e.g. \"/var/lib/veil\"", "data directory is empty"))
	}
	p.add(checkNickname(c.Nickname))
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.add(keyError("log_level", "use debug, info, warn or error", "unknown log level %q", c.LogLevel))
	}
	if c.LogFormat != LogText && c.LogFormat != LogJSON {
		p.add(keyError("log_format", `use "text" or "json"`, "unknown log format %q", c.LogFormat))
	}
}
