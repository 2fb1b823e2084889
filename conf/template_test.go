package conf

import (
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestTemplateIsDefaults shows that each template states every default: it
// decodes into a zero struct, not over the defaults, and must come out equal
// to them.
func TestTemplateIsDefaults(t *testing.T) {
	for _, home := range []string{"/home/op", ""} {
		t.Setenv("HOME", home) // both data_dir defaults must survive the round trip
		for role, want := range map[string]any{"seed": DefaultSeed(), "relay": DefaultRelay(), "client": DefaultClient()} {
			tmpl, err := Template(role)
			if err != nil {
				t.Fatal(err)
			}
			got := reflect.New(reflect.TypeOf(want))
			md, err := toml.Decode(tmpl, got.Interface())
			if err != nil {
				t.Fatalf("%s template: %v", role, err)
			}
			if u := md.Undecoded(); len(u) > 0 {
				t.Errorf("%s template has unknown keys %v", role, u)
			}
			if !reflect.DeepEqual(got.Elem().Interface(), want) {
				t.Errorf("%s template decodes to\n%+v\nwant\n%+v", role, got.Elem().Interface(), want)
			}
		}
	}
}

func TestTemplateParses(t *testing.T) {
	seed, _ := Template("seed")
	s, err := ParseSeed("seed.toml", []byte(seed))
	if err != nil || !reflect.DeepEqual(*s, DefaultSeed()) {
		t.Errorf("ParseSeed(template) = %+v, %v", s, err)
	}
	relay, _ := Template("relay")
	r, err := ParseRelay("relay.toml", []byte(relay))
	if err != nil || !reflect.DeepEqual(*r, DefaultRelay()) {
		t.Errorf("ParseRelay(template) = %+v, %v", r, err)
	}

	// The client template parses but asks for a seed; uncommenting the
	// example gets as far as the placeholder identity.
	client, _ := Template("client")
	_, err = ParseClient("client.toml", []byte(client))
	if e, ok := err.(*Error); !ok || e.Key != "seed" {
		t.Errorf("ParseClient(template) = %v, want the no-seeds error", err)
	}
	uncommented := strings.ReplaceAll(client, "# [[seed]]", "[[seed]]")
	for _, k := range []string{"name", "dir_url", "identity"} {
		uncommented = strings.ReplaceAll(uncommented, "# "+k+" = ", k+" = ")
	}
	_, err = ParseClient("client.toml", []byte(uncommented))
	if e, ok := err.(*Error); !ok || e.Key != "seed[0].identity" || e.Line == 0 {
		t.Errorf("ParseClient(uncommented template) = %v, want the placeholder identity refused", err)
	}
}

func TestTemplateComments(t *testing.T) {
	for _, role := range []string{"seed", "relay", "client"} {
		tmpl, err := Template(role)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(tmpl, "\n")
		for i, line := range lines {
			// Every key line follows a comment line.
			if line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, " ") && line != "]" {
				if i == 0 || !strings.HasPrefix(lines[i-1], "#") {
					t.Errorf("%s template line %d %q has no comment above it", role, i+1, line)
				}
			}
		}
	}
	if _, err := Template("exit"); err == nil {
		t.Error("Template(exit) succeeded")
	}
}

func TestTemplateDocsHaveKeys(t *testing.T) {
	// A comment for a key that no longer exists is a sign of drift.
	for role, docs := range templateDocs {
		def, _ := roleDefaults(role)
		known := knownKeys(reflect.TypeOf(def), "")
		for key := range docs {
			if !known[key] {
				t.Errorf("%s: comment for unknown key %q", role, key)
			}
		}
	}
}

func TestTomlQuote(t *testing.T) {
	in := "a\"b\\c\td\x01é\x7f"
	var got struct{ S string }
	if _, err := toml.Decode("S = "+tomlQuote(in), &got); err != nil || got.S != in {
		t.Errorf("tomlQuote(%q) = %s decodes to %q, %v", in, tomlQuote(in), got.S, err)
	}
}
