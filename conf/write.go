package conf

import (
	"bytes"
	"fmt"
	"os"

	"github.com/BurntSushi/toml"
)

// Write saves a config (a Seed, Relay or Client) as TOML that Load reads
// back to the same values, with mode 0600: configs name data directories
// and may hold a network key. Tools such as `veil testnet` use it; people
// start from `veil config init`, which explains every key.
func Write(path string, cfg any) error {
	var b bytes.Buffer
	b.WriteString("# Written by veil; `veil config init` shows every key with its meaning.\n\n")
	if err := toml.NewEncoder(&b).Encode(cfg); err != nil {
		return fmt.Errorf("conf: encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("conf: %w", err)
	}
	return nil
}
