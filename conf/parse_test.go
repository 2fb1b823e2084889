package conf

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// A valid node ID: 52 characters of [a-z2-7].
const (
	idA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

type badCase struct {
	name string
	doc  string
	line int    // want Error.Line
	key  string // want Error.Key
	msg  string // substring of Error.Msg
	hint string // substring of Error.Hint
}

func checkBad(t *testing.T, tc badCase, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error = %v (%T), want *Error", tc.name, err, err)
	}
	// Of several problems (Errors), the case names one by its key.
	var all Errors
	if errors.As(err, &all) {
		for _, one := range all {
			if one.Key == tc.key {
				e = one
				break
			}
		}
	}
	if e.File != "test.toml" || e.Line != tc.line || e.Key != tc.key ||
		!strings.Contains(e.Msg, tc.msg) || !strings.Contains(e.Hint, tc.hint) {
		t.Errorf("%s:\n got %+v\nwant line %d key %q msg ~%q hint ~%q", tc.name, e, tc.line, tc.key, tc.msg, tc.hint)
	}
	if e.Msg != strings.ToLower(e.Msg[:1])+e.Msg[1:] {
		t.Errorf("%s: message %q starts with a capital", tc.name, e.Msg)
	}
}

func TestParseRelayErrors(t *testing.T) {
	for _, tc := range []badCase{
		{"unknown key", "nickname = \"r1\"\nlisten_adress = \"127.0.0.1:9001\"\n", 2, "listen_adress", "unknown key", "veil config init --role relay"},
		{"misspelt key", "\n\nor_adr = \"127.0.0.1:9001\"\n", 3, "or_adr", "unknown key", `did you mean "or_addr"?`},
		{"wrong case", "OR_ADDR = \"127.0.0.1:9001\"\n", 1, "OR_ADDR", "unknown key", `did you mean "or_addr"?`},
		{"unknown table", "exit = true\n[tuning]\nfoo = 1\n", 2, "tuning", "unknown key", "veil config init"},
		{"wrong type", "# a comment\nor_addr = 5\n", 2, "or_addr", "wrong type: got integer, want string", `or_addr = "127.0.0.1:9001"`},
		{"wrong type bool", "exit = \"yes\"\n", 1, "exit", "wrong type: got string, want boolean", "exit = false"},
		{"wrong type list", "seeds = \"127.0.0.1:7946\"\n", 1, "seeds", "wrong type: got string, want array", `seeds = ["127.0.0.1:7946"]`},
		{"duration without unit", "onion_key_grace = 3600\n", 1, "onion_key_grace", `invalid duration "3600"`, `onion_key_grace = "24h"`},
		{"decimal size", "max_memory = \"1GB\"\n", 1, "max_memory", `unknown unit "GB"`, `max_memory = "256MiB"`},
		{"syntax", "exit = true\nor_addr = \"127.0.0.1:9001\n", 2, "or_addr", "strings cannot contain newlines", ""},
		{"duplicate key", "exit = true\nexit = false\n", 2, "exit", "already been defined", ""},
		{"port out of range", "or_addr = \"127.0.0.1:70000\"\n", 1, "or_addr", `port "70000" out of range`, "ports are 0 to 65535"},
		{"port not a number", "or_addr = \"127.0.0.1:http\"\n", 1, "or_addr", `port "http" out of range`, ""},
		{"missing port", "or_addr = \"localhost\"\n", 1, "or_addr", `malformed address "localhost": missing port`, "host:port"},
		{"missing host", "or_addr = \":9001\"\n", 1, "or_addr", "has no host", "0.0.0.0:9001"},
		{"bad host", "or_addr = \"my host:9001\"\n", 1, "or_addr", `bad host "my host"`, ""},
		{"no seeds", "seeds = []\n", 1, "seeds", "no seeds", "seeds = ["},
		{"bad seed", "seeds = [\n  \"127.0.0.1:7946\",\n  \"127.0.0.1:0\",\n]\n", 3, "seeds[1]", `port "0" out of range`, "1 to 65535"},
		{"bad exit policy", "exit = true\nexit_policy = [\n  \"reject private:*\",\n  \"acept *:80\",\n]\n", 4, "exit_policy",
			`line 2 "acept *:80": unknown action "acept"`, "use accept or reject"},
		{"bad exit policy inline", "exit_policy = ['accept *:*', 'reject *:0']\n", 1, "exit_policy", `line 2 "reject *:0": bad port`, "a port such as 443"},
		{"nickname charset", "nickname = \"my-relay\"\n", 1, "nickname", `has '-'`, "letters and digits"},
		{"nickname length", "nickname = \"abcdefghijklmnopqrst\"\n", 1, "nickname", "1 to 19 characters", ""},
		{"log level", "log_level = \"verbose\"\n", 1, "log_level", `unknown log level "verbose"`, "debug, info, warn or error"},
		{"empty data dir", "data_dir = \"\"\n", 1, "data_dir", "data directory is empty", ""},
		{"grace too long", "onion_key_rotation = \"24h\"\nonion_key_grace = \"48h\"\n", 2, "onion_key_grace", "not shorter", "shorter than onion_key_rotation"},
		{"zero rotation", "onion_key_rotation = \"0s\"\n", 1, "onion_key_rotation", "must be positive", ""},
		{"zero quota", "storage = true\nstorage_quota = 0\n", 2, "storage_quota", "quota is 0", ""},
		{"zero bandwidth", "bandwidth_rate = \"0B\"\n", 1, "bandwidth_rate", "must be positive", ""},
		{"small memory", "max_memory = \"1MiB\"\n", 1, "max_memory", "too small", "16MiB"},
		{"no circuits", "max_circuits = 0\n", 1, "max_circuits", "must be positive", ""},
		{"bad family", "family = [\"" + idA + "\", \"abc\"]\n", 1, "family[1]", "has 3 characters, want 52", "node ID"},
		{"contact newline", "contact = \"a\\nb\"\n", 1, "contact", "line break", ""},
		{"metrics bad", "metrics_addr = \"localhost\"\n", 1, "metrics_addr", "missing port", ""},
	} {
		_, err := ParseRelay("test.toml", []byte(tc.doc))
		checkBad(t, tc, err)
	}
}

func TestParseSeedErrors(t *testing.T) {
	for _, tc := range []badCase{
		{"port zero", "gossip_addr = \"127.0.0.1:0\"\n", 1, "gossip_addr", `port "0" out of range`, "1 to 65535"},
		{"dir addr", "dir_addr = \"127.0.0.1\"\n", 1, "dir_addr", "missing port", ""},
		{"peer seeds", "peer_seeds = [\n  \"seed2.example:7946\",\n  \"seed3.example\",\n]\n", 3, "peer_seeds[1]", "missing port", ""},
		{"interval", "consensus_interval = \"-1m\"\n", 1, "consensus_interval", "must be positive", ""},
		{"admission", "admission = \"closed\"\n", 1, "admission", `unknown admission mode "closed"`, `"open" or "allowlist"`},
		{"empty allowlist", "admission = \"allowlist\"\n", 1, "admission", "allowlist is empty", ""},
		{"bad allowlist", "admission = \"allowlist\"\nallowlist = [\"" + strings.ToUpper(idA) + "\"]\n", 2, "allowlist[0]", "only a-z and 2-7", ""},
		{"negative limit", "max_relays_per_slash16 = -1\n", 1, "max_relays_per_slash16", "negative", "0 for no limit"},
		{"network key", "network_key = \"c2hvcnQ=\"\n", 1, "network_key", "32 bytes", "head -c 32"},
		{"relay key in seed", "exit = true\n", 1, "exit", "unknown key", ""},
	} {
		_, err := ParseSeed("test.toml", []byte(tc.doc))
		checkBad(t, tc, err)
	}
}

const clientSeeds = `
[[seed]]
name = "s1"
dir_url = "http://127.0.0.1:7080"
identity = "` + idA + `"
`

func TestParseClientErrors(t *testing.T) {
	second := func(lines string) string { return clientSeeds + "\n[[seed]]\n" + lines }
	for _, tc := range []badCase{
		{"no seeds", "socks_addr = \"127.0.0.1:1080\"\n", 0, "seed", "no seeds", "[[seed]]"},
		{"bad dir url", second("name = \"s2\"\ndir_url = \"ftp://127.0.0.1:7080\"\nidentity = \"" + idB + "\"\n"),
			9, "seed[1].dir_url", "must start with http://", "http://127.0.0.1:7080"},
		{"dir url path", second("name = \"s2\"\ndir_url = \"http://h:7080/x\"\nidentity = \"" + idB + "\"\n"),
			9, "seed[1].dir_url", "nothing more", ""},
		{"dir url port", second("name = \"s2\"\ndir_url = \"http://h:0\"\nidentity = \"" + idB + "\"\n"),
			9, "seed[1].dir_url", "out of range", ""},
		{"duplicate identity", second("name = \"s2\"\ndir_url = \"http://h:7080\"\nidentity = \"" + idA + "\"\n"),
			10, "seed[1].identity", "pinned twice", "list each seed once"},
		{"duplicate name", second("name = \"s1\"\ndir_url = \"http://h:7080\"\nidentity = \"" + idB + "\"\n"),
			8, "seed[1].name", "used twice", ""},
		{"missing identity", second("name = \"s2\"\ndir_url = \"http://h:7080\"\n"),
			7, "seed[1].identity", "has 0 characters", ""},
		{"unknown seed key", second("nmae = \"s2\"\n"), 8, "seed.nmae", "unknown key", `did you mean "seed.name"?`},
		{"seed as table", "[seed]\nname = \"x\"\n", 1, "seed", "", ""},
		{"circuit pool", "circuit_pool = 0\n" + clientSeeds, 1, "circuit_pool", "out of range", "1 to 64"},
		{"guard lifetime", "guard_lifetime = \"0s\"\n" + clientSeeds, 1, "guard_lifetime", "must be positive", ""},
		{"metrics no port", "metrics_addr = \"127.0.0.1\"\n" + clientSeeds, 1, "metrics_addr", "missing port", "host:port"},
		{"metrics port", "\nmetrics_addr = \"127.0.0.1:65536\"\n" + clientSeeds, 2, "metrics_addr", "out of range", ""},
	} {
		_, err := ParseClient("test.toml", []byte(tc.doc))
		checkBad(t, tc, err)
	}
}

func TestParseValid(t *testing.T) {
	r, err := ParseRelay("relay.toml", []byte(`
nickname = "Relay7"
or_addr = "0.0.0.0:0"        # port 0: pick a free port
or_advertise = "203.0.113.7:0" # published, with the port picked
gossip_addr = "[::1]:7947"
seeds = ["seed.example.org:7946", "[2001:db8::1]:7946"]
exit = true
exit_policy = ["accept 127.0.0.1:*", "reject *:*"]
metrics_addr = "127.0.0.1:0"
max_memory = "1GiB"
family = ["`+idA+`"]
`))
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultRelay()
	if r.Nickname != "Relay7" || r.ORAddr != "0.0.0.0:0" || len(r.Seeds) != 2 || r.MaxMemory != GiB ||
		r.DataDir != def.DataDir || r.OnionKeyRotation != def.OnionKeyRotation {
		t.Errorf("ParseRelay = %+v", r)
	}
	if p := r.Policy(); len(p) != 2 || p.Lines()[0] != "accept 127.0.0.1:*" {
		t.Errorf("Policy() = %q", p.Lines())
	}
	r.Exit = false
	if got := r.Policy().String(); got != "reject *:*" {
		t.Errorf("Policy() of a non-exit = %q, want reject *:*", got)
	}

	s, err := ParseSeed("seed.toml", []byte("guard_min_uptime = \"0s\"\nmax_relays_per_slash16 = 0\nnetwork_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.GuardMinUptime != 0 || len(s.GossipKey()) != 32 {
		t.Errorf("ParseSeed = %+v", s)
	}

	c, err := ParseClient("client.toml", []byte("socks_addr = \"127.0.0.1:0\"\nlog_level = \"debug\"\n"+clientSeeds))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Seeds) != 1 || c.Seeds[0].Identity != idA || c.SlogLevel().String() != "DEBUG" {
		t.Errorf("ParseClient = %+v", c)
	}
	if c.MetricsAddr != "" {
		t.Errorf("metrics_addr defaults to %q, want off", c.MetricsAddr)
	}
	c, err = ParseClient("client.toml", []byte("metrics_addr = \"127.0.0.1:0\"\n"+clientSeeds))
	if err != nil || c.MetricsAddr != "127.0.0.1:0" {
		t.Errorf("ParseClient(metrics_addr) = %+v, %v", c, err)
	}
}

func TestErrorFormat(t *testing.T) {
	doc := "exit = true\nexit_policy = [\n  \"reject private:*\",\n  \"acept *:80\",\n]\n"
	_, err := ParseRelay("relay.toml", []byte(doc))
	want := `relay.toml:4: key "exit_policy": line 2 "acept *:80": unknown action "acept" (hint: use accept or reject)`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
	r := DefaultRelay()
	r.ORAddr = "nowhere"
	want = `conf: key "or_addr": malformed address "nowhere": missing port in address (hint: write host:port, e.g. "127.0.0.1:9001", "0.0.0.0:9001" or "[::1]:9001")`
	if err := r.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate() = %v\nwant         %s", err, want)
	}
}

func TestDefaultsValidate(t *testing.T) {
	s, r := DefaultSeed(), DefaultRelay()
	if err := s.Validate(); err != nil {
		t.Error(err)
	}
	if err := r.Validate(); err != nil {
		t.Error(err)
	}
	c := DefaultClient()
	if err := c.Validate(); err == nil {
		t.Error("DefaultClient validates without a seed")
	}
	c.Seeds = []SeedPin{{Name: "s1", DirURL: "http://127.0.0.1:7080", Identity: idA}}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestDefaultDataDir(t *testing.T) {
	t.Setenv("HOME", "")
	if got := DefaultDataDir("relay"); got != "veil-relay" {
		t.Errorf("DefaultDataDir without HOME = %q", got)
	}
	t.Setenv("HOME", "/home/op")
	if got := DefaultDataDir("relay"); got != "/home/op/.veil/relay" {
		t.Errorf("DefaultDataDir = %q", got)
	}
}

// TestEveryErrorInFileOrder (issue 16 item 10): a config with several
// problems reports each at its own line, in the order of the file, not
// only the first one a validator happens to check.
func TestEveryErrorInFileOrder(t *testing.T) {
	doc := `nickname = "bad-name"
or_addr = "127.0.0.1:70000"
seeds = ["127.0.0.1:7946", "127.0.0.1:0"]
exit = true
max_circuits = 0
log_level = "loud"
listen_adress = "x"
`
	_, err := ParseRelay("relay.toml", []byte(doc))
	var all Errors
	if !errors.As(err, &all) {
		t.Fatalf("error = %v (%T), want Errors", err, err)
	}
	var got []string
	for _, e := range all {
		got = append(got, fmt.Sprintf("%d %s", e.Line, e.Key))
	}
	want := []string{"1 nickname", "2 or_addr", "3 seeds[1]", "5 max_circuits", "6 log_level", "7 listen_adress"}
	if !slices.Equal(got, want) {
		t.Fatalf("errors at\n%s\nwant\n%s\n(%v)", strings.Join(got, "\n"), strings.Join(want, "\n"), err)
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(want) || !strings.HasPrefix(lines[2], "relay.toml:3: ") {
		t.Fatalf("Error() is not one line per problem:\n%s", err)
	}
}

// TestListenAndAdvertise (issue 16 item 2): what a relay or seed would
// refuse at start because of its addresses, config check refuses at the
// key's line; a listen address on every interface is fine once the
// address to publish is given.
func TestListenAndAdvertise(t *testing.T) {
	for _, tc := range []badCase{
		{"or_addr everywhere", "or_addr = \"0.0.0.0:9001\"\n", 1, "or_addr", "listens on every address", "or_advertise ="},
		{"or_addr everywhere v6", "\nor_addr = \"[::]:9001\"\n", 2, "or_addr", "listens on every address", "or_advertise ="},
		{"or_addr host name", "or_addr = \"localhost:9001\"\n", 1, "or_addr", "not an IP address", "0.0.0.0:9001"},
		{"gossip everywhere", "gossip_addr = \"0.0.0.0:7947\"\n", 1, "gossip_addr", "listens on every address", "gossip_advertise ="},
		{"gossip host name", "gossip_addr = \"localhost:7947\"\n", 1, "gossip_addr", "not an IP address", ""},
		{"advertise unspecified", "or_addr = \"0.0.0.0:9001\"\nor_advertise = \"0.0.0.0:9001\"\n", 2, "or_advertise", "unspecified", "public IP"},
		{"advertise host name", "or_advertise = \"relay.example.org:9001\"\n", 1, "or_advertise", "not an IP address", ""},
		{"advertise mapped", "or_advertise = \"[::ffff:192.0.2.1]:9001\"\n", 1, "or_advertise", "IPv4-mapped", `"192.0.2.1:9001"`},
		{"v6 listener not v6", "or_addr_v6 = \"127.0.0.2:9001\"\n", 1, "or_addr_v6", "not an IPv6 address", ""},
		{"v6 listener twice", "or_addr = \"[::]:9001\"\nor_advertise = \"192.0.2.1:9001\"\nor_addr_v6 = \"[::1]:9002\"\n", 3, "or_addr_v6", "already listens", ""},
		{"v6 listener everywhere", "or_addr_v6 = \"[::]:9001\"\n", 1, "or_addr_v6", "every IPv6 address", "or_advertise_v6 ="},
		{"v6 advertise not v6", "or_advertise_v6 = \"192.0.2.1:9001\"\n", 1, "or_advertise_v6", "not an IPv6 address", ""},
		{"two v6", "or_addr = \"[::1]:9001\"\nor_advertise_v6 = \"[2001:db8::7]:9001\"\n", 2, "or_advertise_v6", "IPv6 already", "IPv4 one"},
	} {
		_, err := ParseRelay("test.toml", []byte(tc.doc))
		checkBad(t, tc, err)
	}
	for _, tc := range []badCase{
		{"seed gossip everywhere", "gossip_addr = \"0.0.0.0:7946\"\n", 1, "gossip_addr", "listens on every address", "gossip_advertise"},
		{"seed dir everywhere", "dir_addr = \"[::]:7080\"\n", 1, "dir_addr", "listens on every address", "dir_advertise"},
		{"seed gossip host name", "gossip_addr = \"localhost:7946\"\n", 1, "gossip_addr", "not an IP address", ""},
	} {
		_, err := ParseSeed("test.toml", []byte(tc.doc))
		checkBad(t, tc, err)
	}

	r, err := ParseRelay("relay.toml", []byte(`or_addr = "[::]:9001"
or_advertise = "192.0.2.1:0"
or_advertise_v6 = "[2001:db8::7]:9001"
gossip_addr = "0.0.0.0:7947"
gossip_advertise = "192.0.2.1:0"
`))
	if err != nil || r.ORAdvertise != "192.0.2.1:0" || r.ORAdvertiseV6 != "[2001:db8::7]:9001" {
		t.Fatalf("a dual-stack relay behind NAT: %+v, %v", r, err)
	}
	if _, err := ParseRelay("relay.toml", []byte("or_addr = \"127.0.0.1:0\"\nor_addr_v6 = \"[::1]:0\"\n")); err != nil {
		t.Fatalf("an IPv4 and an IPv6 listener: %v", err)
	}
	if _, err := ParseSeed("seed.toml", []byte("gossip_addr = \"[::]:7946\"\ngossip_advertise = \"[2001:db8::1]:0\"\ndir_addr = \"0.0.0.0:7080\"\ndir_advertise = \"192.0.2.1:7080\"\n")); err != nil {
		t.Fatalf("a seed on every address: %v", err)
	}
}

// TestWhatADescriptorCannotCarry (issue 16 item 2): config check refuses
// what the relay would refuse at start, when it signs its descriptor.
func TestWhatADescriptorCannotCarry(t *testing.T) {
	rules := make([]string, 300)
	for i := range rules {
		rules[i] = fmt.Sprintf("%q", fmt.Sprintf("accept *:%d", i+1))
	}
	family := make([]string, 17)
	for i := range family {
		family[i] = fmt.Sprintf("%q", strings.Repeat(string(rune('a'+i)), 52))
	}
	for _, tc := range []badCase{
		{"too many rules", "exit = true\nexit_policy = [" + strings.Join(rules, ", ") + "]\n", 2, "exit_policy", "300 rules", "at most 256"},
		{"too many family", "family = [" + strings.Join(family, ", ") + "]\n", 1, "family", "17 family members", "at most 16"},
		{"contact bidi", "contact = \"op\u202e@example.org\"\n", 1, "contact", "U+202E", "printable"},
		{"contact tab", "contact = \"a\\tb\"\n", 1, "contact", "U+0009", ""},
	} {
		_, err := ParseRelay("test.toml", []byte(tc.doc))
		checkBad(t, tc, err)
	}
	// A policy of more than 256 rules is fine while the relay is no exit:
	// the descriptor carries none.
	if _, err := ParseRelay("test.toml", []byte("exit_policy = ["+strings.Join(rules, ", ")+"]\n")); err != nil {
		t.Fatal(err)
	}
}
