package path

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"veil/conf/durable"
	"veil/onion/keys"
)

// GuardFile is the name of the guard file in Options.DataDir.
const GuardFile = "guards"

// The guard file, SPEC.md §1.2: a header line, then one line per guard in
// preference order, each "NODEID CHOSEN DOWNSINCE\n" with the times in
// decimal Unix seconds (DOWNSINCE 0 while the guard is usable). Every
// state has exactly one encoding, and parseGuards refuses anything else.
const (
	guardHeader = "veil guards v1\n"
	// maxGuardFileLen bounds what NewSelector reads: the header and
	// MaxGuards lines of a 52-character node ID and two 19-digit times.
	maxGuardFileLen = len(guardHeader) + MaxGuards*(keys.NodeIDStringLen+1+19+1+19+1)
	// maxUnixDigits is the most digits a time may take: int64 seconds.
	maxUnixDigits = 19
)

var errGuardFile = errors.New("malformed")

// guardRecord is one guard the client keeps.
type guardRecord struct {
	ID     keys.NodeID
	Chosen time.Time // when it was chosen; it is dropped GuardLifetime later
	Down   time.Time // when it was first seen unusable; zero while usable
}

// marshalGuards encodes records as SPEC.md §1.2 describes. Times are
// truncated to whole seconds, which the file keeps.
func marshalGuards(records []guardRecord) []byte {
	var b bytes.Buffer
	b.WriteString(guardHeader)
	for _, r := range records {
		fmt.Fprintf(&b, "%s %d %d\n", r.ID, r.Chosen.Unix(), unixOrZero(r.Down))
	}
	return b.Bytes()
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// parseGuards decodes a guard file. It accepts only what marshalGuards
// writes: the header, at most MaxGuards lines of distinct node IDs in
// canonical form and canonical non-negative decimal times, each line
// ending in a newline.
func parseGuards(b []byte) ([]guardRecord, error) {
	fail := func(line int, format string, args ...any) error {
		return fmt.Errorf("%w: line %d: %s", errGuardFile, line, fmt.Sprintf(format, args...))
	}
	if len(b) > maxGuardFileLen {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errGuardFile, len(b), maxGuardFileLen)
	}
	rest, ok := bytes.CutPrefix(b, []byte(guardHeader))
	if !ok {
		return nil, fail(1, "want header %q", strings.TrimSpace(guardHeader))
	}
	var out []guardRecord
	for n := 2; len(rest) > 0; n++ {
		line, after, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, fail(n, "no newline at the end")
		}
		rest = after
		if len(out) == MaxGuards {
			return nil, fail(n, "more than %d guards", MaxGuards)
		}
		fields := strings.Split(string(line), " ")
		if len(fields) != 3 {
			return nil, fail(n, "%d fields, want 3 separated by single spaces", len(fields))
		}
		id, err := keys.ParseNodeID(fields[0])
		if err != nil {
			return nil, fail(n, "%v", err)
		}
		for _, r := range out {
			if r.ID == id {
				return nil, fail(n, "guard %s listed twice", id.Short())
			}
		}
		chosen, err := parseUnix(fields[1])
		if err != nil {
			return nil, fail(n, "chosen-at time: %v", err)
		}
		down, err := parseUnix(fields[2])
		if err != nil {
			return nil, fail(n, "down-since time: %v", err)
		}
		r := guardRecord{ID: id, Chosen: time.Unix(chosen, 0).UTC()}
		if down != 0 {
			r.Down = time.Unix(down, 0).UTC()
		}
		out = append(out, r)
	}
	return out, nil
}

// parseUnix parses a canonical non-negative decimal: digits only, no
// leading zero unless it is "0".
func parseUnix(s string) (int64, error) {
	if s == "" || len(s) > maxUnixDigits || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%q is not canonical decimal seconds", s)
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not canonical decimal seconds", s)
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: out of range", s)
	}
	return v, nil
}

// loadGuards reads the guard file in dir; a missing file is no guards.
func loadGuards(dir string) ([]guardRecord, error) {
	name := filepath.Join(dir, GuardFile)
	f, err := os.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("path: guard file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(maxGuardFileLen)+1))
	if err != nil {
		return nil, fmt.Errorf("path: guard file: read %s: %w", name, err)
	}
	records, err := parseGuards(b)
	if err != nil {
		return nil, fmt.Errorf("path: guard file %s: %w (delete it to choose new guards)", name, err)
	}
	return records, nil
}

// saveGuards replaces the guard file in dir so that a crash leaves the old
// file or the new one, never a mix (conf/durable).
func saveGuards(dir string, records []guardRecord) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write guard file: %w", err)
	}
	if err := durable.WriteFile(filepath.Join(dir, GuardFile), marshalGuards(records), 0o600); err != nil {
		return fmt.Errorf("path: guard file: %w", err)
	}
	return nil
}
