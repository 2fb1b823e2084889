package conf

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in TOML as a string in Go's syntax,
// e.g. "90s", "10m" or "720h". A bare number is refused because a unit-less
// duration is the classic config mistake (is 60 seconds or nanoseconds?).
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String returns the shortest form in the largest whole unit, e.g. "168h"
// rather than "168h0m0s", so templates read naturally.
func (d Duration) String() string {
	td := time.Duration(d)
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if td != 0 && td%u.unit == 0 {
			return strconv.FormatInt(int64(td/u.unit), 10) + u.name
		}
	}
	return td.String()
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d *Duration) UnmarshalText(text []byte) error {
	s := string(text)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: write a number with a unit, e.g. \"90s\", \"10m\" or \"24h\"", s)
	}
	*d = Duration(v)
	return nil
}

// Size is a number of bytes written in TOML as a string with a binary unit,
// e.g. "512MiB" or "10GiB", or as a bare integer number of bytes.
// Decimal units (MB, GB) are refused so that nobody gets 7% less than they
// asked for without noticing.
type Size uint64

const (
	KiB Size = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

var sizeUnits = []struct {
	size Size
	name string
}{{TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}}

// String returns the size in the largest unit that divides it, e.g. "256MiB".
func (s Size) String() string {
	for _, u := range sizeUnits {
		if s != 0 && s%u.size == 0 {
			return strconv.FormatUint(uint64(s/u.size), 10) + u.name
		}
	}
	return strconv.FormatUint(uint64(s), 10) + "B"
}

func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s *Size) UnmarshalText(text []byte) error {
	str := string(text)
	i := strings.IndexFunc(str, func(r rune) bool { return r < '0' || r > '9' })
	digits, unit := str, ""
	if i >= 0 {
		digits, unit = str[:i], str[i:]
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return fmt.Errorf("invalid size %q: write a whole number with a unit, e.g. \"512MiB\" or \"10GiB\"", str)
	}
	mult := Size(1)
	switch unit {
	case "", "B":
	case "KiB":
		mult = KiB
	case "MiB":
		mult = MiB
	case "GiB":
		mult = GiB
	case "TiB":
		mult = TiB
	default:
		return fmt.Errorf("invalid size %q: unknown unit %q, use B, KiB, MiB, GiB or TiB", str, unit)
	}
	if n > math.MaxUint64/uint64(mult) {
		return fmt.Errorf("invalid size %q: too large", str)
	}
	*s = Size(n) * mult
	return nil
}
