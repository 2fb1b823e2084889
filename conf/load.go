package conf

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// ParseSeed parses a seed config over DefaultSeed and validates it. name
// labels errors (usually the file name); nothing outside data is read or
// written.
func ParseSeed(name string, data []byte) (*Seed, error) {
	c := DefaultSeed()
	if _, err := parse(name, "seed", data, &c, c.validate); err != nil {
		return nil, err
	}
	return &c, nil
}

// ParseRelay is ParseSeed for relays.
func ParseRelay(name string, data []byte) (*Relay, error) {
	c := DefaultRelay()
	if _, err := parse(name, "relay", data, &c, c.validate); err != nil {
		return nil, err
	}
	return &c, nil
}

// ParseClient is ParseSeed for clients.
func ParseClient(name string, data []byte) (*Client, error) {
	c := DefaultClient()
	if _, err := parse(name, "client", data, &c, c.validate); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadSeed reads, parses and validates a seed config, then creates its data
// directory, so a daemon that loaded its config can write its keys.
func LoadSeed(path string) (*Seed, error) {
	c := DefaultSeed()
	if err := load(path, "seed", &c, c.validate, &c.Common); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadRelay is LoadSeed for relays.
func LoadRelay(path string) (*Relay, error) {
	c := DefaultRelay()
	if err := load(path, "relay", &c, c.validate, &c.Common); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadClient is LoadSeed for clients.
func LoadClient(path string) (*Client, error) {
	c := DefaultClient()
	if err := load(path, "client", &c, c.validate, &c.Common); err != nil {
		return nil, err
	}
	return &c, nil
}

func load[T any](path, role string, cfg *T, validate func(*problems), common *Common) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return &Error{File: path, Msg: fmt.Sprintf("cannot read config: %v", unwrapPath(err)), Err: err,
			Hint: fmt.Sprintf("create one with: veil config init --role %s > %s", role, path)}
	}
	kl, err := parse(path, role, data, cfg, validate)
	if err != nil {
		return err
	}
	// 0700: the directory holds identity and onion keys.
	if err := os.MkdirAll(common.DataDir, 0o700); err != nil {
		return &Error{File: path, Line: kl.line("data_dir"), Key: "data_dir", Err: err,
			Msg:  fmt.Sprintf("cannot create data directory %q: %v", common.DataDir, unwrapPath(err)),
			Hint: "set data_dir to a directory you can write to, or create it with mode 0700"}
	}
	return nil
}

// unwrapPath drops the *PathError wrapper, whose path we print already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// parse decodes data over cfg (which holds the role's defaults), refuses
// unknown keys, validates, and places every error at a line of the file.
// A TOML syntax or type error stops the decoder, so it comes alone; every
// other problem is reported, in file order (those at no line last).
func parse[T any](name, role string, data []byte, cfg *T, validate func(*problems)) (*keyLines, error) {
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		return nil, decodeError(name, role, err)
	}
	kl := scanKeyLines(string(data))
	known := knownKeys(reflect.TypeOf(cfg).Elem(), "")
	var p problems
	// toml matches keys to fields case-insensitively and Undecoded reports
	// only keys that match no field, so check every key exactly; Undecoded
	// stays as a backstop.
	seen := map[string]bool{}
	for _, k := range slices.Concat(md.Keys(), md.Undecoded()) {
		ks := strings.Join(k, ".") // unquoted, as keyLines and knownKeys spell keys
		if known[ks] || seen[ks] {
			continue
		}
		seen[ks] = true
		e := &Error{Key: ks, Msg: "unknown key",
			Hint: fmt.Sprintf("see veil config init --role %s for every key", role)}
		if best := closestKey(ks, known); best != "" {
			e.Hint = fmt.Sprintf("did you mean %q?", best)
		}
		p.add(e)
	}
	validate(&p)
	for _, e := range p {
		e.File = name
		e.Line = kl.line(e.Key)
		if e.elem != "" {
			e.Line = kl.elemLine(e.Line, e.elem)
		}
	}
	slices.SortStableFunc(p, func(a, b *Error) int {
		return cmpLine(a.Line, b.Line)
	})
	if err := p.err(); err != nil {
		return nil, err
	}
	return kl, nil
}

// cmpLine orders lines ascending with 0 (no line: a key the file does not
// set) after every real line.
func cmpLine(a, b int) int {
	if a == 0 {
		a = math.MaxInt
	}
	if b == 0 {
		b = math.MaxInt
	}
	return cmp.Compare(a, b)
}
