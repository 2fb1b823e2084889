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

	"veil/conf/durable"
	"veil/onion/keys"
)

// The vanguard file (SPEC.md §3.2) and the path-bias file (SPEC.md
// §1.3.2) share one layout, the guard file's with other numbers: a header
// line, then one line per relay, "NODEID N1 N2 ...\n", each N a canonical
// non-negative decimal. Every state has one encoding and parseState
// refuses anything else, so a file that does not parse is a bug or
// tampering, never a format to guess at.

// stateFile describes one such file.
type stateFile struct {
	name   string // in Options.DataDir
	header string // the first line, with its newline
	fields int    // numbers after the node ID
	max    int    // lines after the header, at most
}

// stateRecord is one line: a relay and its numbers.
type stateRecord struct {
	ID keys.NodeID
	N  []int64
}

var errStateFile = errors.New("malformed")

// maxLen is the longest file f allows: the header and max lines of a
// node ID and f.fields numbers of maxUnixDigits digits each.
func (f stateFile) maxLen() int {
	return len(f.header) + f.max*(keys.NodeIDStringLen+f.fields*(1+maxUnixDigits)+1)
}

// marshal encodes recs. Every number must be non-negative; a negative one
// is an internal error.
func (f stateFile) marshal(recs []stateRecord) []byte {
	var b bytes.Buffer
	b.WriteString(f.header)
	for _, r := range recs {
		if len(r.N) != f.fields {
			panic("path: internal error: state record of the wrong length")
		}
		b.WriteString(r.ID.String())
		for _, n := range r.N {
			if n < 0 {
				panic("path: internal error: negative number in a state record")
			}
			b.WriteByte(' ')
			b.WriteString(strconv.FormatInt(n, 10))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// parse decodes what marshal writes and nothing else: the header, at most
// f.max lines of distinct node IDs in canonical form, each followed by
// f.fields canonical decimals separated by single spaces and ended by a
// newline. It checks the syntax only; what the numbers mean is checked by
// the caller.
func (f stateFile) parse(b []byte) ([]stateRecord, error) {
	fail := func(line int, format string, args ...any) error {
		return fmt.Errorf("%w: line %d: %s", errStateFile, line, fmt.Sprintf(format, args...))
	}
	if len(b) > f.maxLen() {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errStateFile, len(b), f.maxLen())
	}
	rest, ok := bytes.CutPrefix(b, []byte(f.header))
	if !ok {
		return nil, fail(1, "want header %q", strings.TrimSpace(f.header))
	}
	var out []stateRecord
	for n := 2; len(rest) > 0; n++ {
		line, after, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, fail(n, "no newline at the end")
		}
		rest = after
		if len(out) == f.max {
			return nil, fail(n, "more than %d lines", f.max)
		}
		fields := strings.Split(string(line), " ")
		if len(fields) != 1+f.fields {
			return nil, fail(n, "%d fields, want %d separated by single spaces", len(fields), 1+f.fields)
		}
		id, err := keys.ParseNodeID(fields[0])
		if err != nil {
			return nil, fail(n, "%v", err)
		}
		for _, r := range out {
			if r.ID == id {
				return nil, fail(n, "relay %s listed twice", id.Short())
			}
		}
		r := stateRecord{ID: id, N: make([]int64, f.fields)}
		for i, s := range fields[1:] {
			if r.N[i], err = parseUnix(s); err != nil {
				return nil, fail(n, "field %d: %v", i+2, err)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// load reads f from dir; a missing file is no records.
func (f stateFile) load(dir string) ([]stateRecord, error) {
	name := filepath.Join(dir, f.name)
	fh, err := os.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("path: %s file: %w", f.name, err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, int64(f.maxLen())+1))
	if err != nil {
		return nil, fmt.Errorf("path: %s file: read %s: %w", f.name, name, err)
	}
	recs, err := f.parse(b)
	if err != nil {
		return nil, fmt.Errorf("path: %s file %s: %w (delete it to start afresh)", f.name, name, err)
	}
	return recs, nil
}

// save replaces f in dir with recs so that a crash leaves the old file or
// the new one, never a mix (conf/durable).
func (f stateFile) save(dir string, recs []stateRecord) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("path: %s file: %w", f.name, err)
	}
	if err := durable.WriteFile(filepath.Join(dir, f.name), f.marshal(recs), 0o600); err != nil {
		return fmt.Errorf("path: %s file: %w", f.name, err)
	}
	return nil
}
