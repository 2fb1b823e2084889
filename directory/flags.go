package directory

// Consensus flags (SPEC.md §5.3).

import (
	"fmt"
	"strings"
)

// Flags are what a seed says about a relay in its consensus. The bits are
// append-only: a new flag takes the next bit, and a parser refuses bits it
// does not know so that no two documents mean the same with different bytes.
type Flags uint16

const (
	FlagExit    Flags = 1 << 0 // exits under its exit policy; only if the descriptor has RoleExit
	FlagStorage Flags = 1 << 1 // stores shards; only if the descriptor has RoleStorage
	FlagGuard   Flags = 1 << 2 // Running, Valid, Stable, and known and up long enough in the seed's history (SPEC.md §5.3.1)
	FlagStable  Flags = 1 << 3 // weighted MTBF in the seed's history of min(1 h, guard_min_uptime) (SPEC.md §5.3.1)
	FlagRunning Flags = 1 << 4 // alive in the seed's memberlist; its OR port answers with its identity (SPEC.md §5.3.2)
	FlagValid   Flags = 1 << 5 // admitted: allowlist, /16 and family caps passed (SPEC.md §5.3)

	knownFlags = FlagExit | FlagStorage | FlagGuard | FlagStable | FlagRunning | FlagValid
)

var flagNames = [...]string{"Exit", "Storage", "Guard", "Stable", "Running", "Valid"}

// Names returns the names of the set flags in bit order, e.g. ["Exit",
// "Running"]; unknown bits appear as "0x40".
func (f Flags) Names() []string {
	var names []string
	for i := 0; i < 16; i++ {
		if bit := Flags(1) << i; f&bit != 0 {
			if i < len(flagNames) {
				names = append(names, flagNames[i])
			} else {
				names = append(names, fmt.Sprintf("%#x", uint16(bit)))
			}
		}
	}
	return names
}

// String returns Names joined by spaces.
func (f Flags) String() string { return strings.Join(f.Names(), " ") }
