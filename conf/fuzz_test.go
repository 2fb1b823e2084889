package conf

import (
	"errors"
	"strings"
	"testing"
)

// Fuzz seeds are small documents, each saying what it exercises. Every
// target checks that parsing never panics, that every error is an *Error,
// and that whatever parses also validates.

func addSeeds(f *testing.F, role string, docs []string) {
	tmpl, err := Template(role)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tmpl) // valid: the full template
	for _, d := range docs {
		f.Add(d)
	}
	for _, d := range []string{
		"",                                   // valid: all defaults (not for a client)
		"nickname = \"Node1\"\n",             // valid
		"log_level = \"verbose\"\n",          // invalid value
		"nickname = 5\n",                     // wrong type
		"nick name = 1\n",                    // syntax
		"nickname = \"a\"\nnickname = \"b\"", // duplicate key
		"[x]\n[[x]]\n",                       // table redefined as array
		"a = \"\"\"\nb = 1\n\"\"\"\n",        // unknown key with a multi-line string
		"\xff\xfe = 1\n",                     // invalid UTF-8
	} {
		f.Add(d)
	}
}

func checkFuzzResult(t *testing.T, doc string, err error, validate func() error) {
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v is %T, want *Error", err, err)
		}
		if e.File != "fuzz.toml" || e.Line < 0 || e.Line > strings.Count(doc, "\n")+1 {
			t.Fatalf("error %v points outside the document", err)
		}
		return
	}
	if err := validate(); err != nil {
		t.Fatalf("parsed config does not validate: %v", err)
	}
}

func FuzzParseSeed(f *testing.F) {
	addSeeds(f, "seed", []string{
		"admission = \"allowlist\"\nallowlist = [\"" + idA + "\"]\n", // valid
		"admission = \"allowlist\"\n",                                // invalid: empty allowlist
		"peer_seeds = [\"seed2:7946\", \"[::1]:7946\"]\n",            // valid
		"peer_seeds = [\"[::1:7946\"]\n",                             // invalid address
		"network_key = \"!!\"\n",                                     // invalid base64
		"consensus_interval = 60\n",                                  // duration without unit
	})
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := ParseSeed("fuzz.toml", []byte(doc))
		checkFuzzResult(t, doc, err, func() error { return c.Validate() })
	})
}

func FuzzParseRelay(f *testing.F) {
	addSeeds(f, "relay", []string{
		"exit = true\nexit_policy = [\"accept 127.0.0.1:*\", \"reject *:*\"]\n", // valid
		"exit_policy = [\n  \"reject private:*\",\n  \"acept *:80\",\n]\n",      // invalid rule on line 3
		"exit_policy = [\"accept [::ffff:1.2.3.4]:*\"]\n",                       // invalid: mapped IPv6
		"or_addr = \"127.0.0.1:70000\"\n",                                       // port out of range
		"or_addr = 5\n",                                                         // wrong type
		"max_memory = \"18446744073709551615TiB\"\n",                            // size overflow
		"storage = true\nstorage_quota = \"1B\"\n",                              // valid, tiny
		"listen_adress = \"x\"\n",                                               // unknown key
	})
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := ParseRelay("fuzz.toml", []byte(doc))
		checkFuzzResult(t, doc, err, func() error { return c.Validate() })
	})
}

func FuzzParseClient(f *testing.F) {
	addSeeds(f, "client", []string{
		clientSeeds,               // valid
		clientSeeds + clientSeeds, // invalid: same seed twice
		"[[seed]]\nname = \"s\"\ndir_url = \"http://[::1]:7080\"\nidentity = \"" + idB + "\"\n", // valid
		"[[seed]]\ndir_url = \"http://%zz\"\n",                                                  // malformed URL
		"seed = [{name = \"s\", dir_url = \"http://h:1\", identity = \"" + idA + "\"}]\n",       // valid inline
		"[[seed]]\nnmae = \"s\"\n",                                                              // unknown key in table
		"[seed]\nname = \"s\"\n",                                                                // table, not array
	})
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := ParseClient("fuzz.toml", []byte(doc))
		checkFuzzResult(t, doc, err, func() error { return c.Validate() })
	})
}
