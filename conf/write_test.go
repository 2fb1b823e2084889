package conf

import (
	"path/filepath"
	"reflect"
	"testing"
)

func TestWriteLoadsBack(t *testing.T) {
	dir := t.TempDir()
	s := DefaultSeed()
	s.DataDir = filepath.Join(dir, "seed")
	s.PeerSeeds = []string{"127.0.0.1:7000"}
	r := DefaultRelay()
	r.DataDir = filepath.Join(dir, "relay")
	r.Exit = true
	r.ExitPolicy = []string{"accept 127.0.0.1:*", "reject *:*"}
	c := DefaultClient()
	c.DataDir = filepath.Join(dir, "client")
	c.Seeds = []SeedPin{{Name: "s", DirURL: "http://127.0.0.1:7080", Identity: "7lfmusasvohvoa2fjpynv57amvgizg7bica53tixcd3aqrvr3l2a"}}

	for name, cfg := range map[string]any{"seed": &s, "relay": &r, "client": &c} {
		path := filepath.Join(dir, name+".toml")
		if err := Write(path, cfg); err != nil {
			t.Fatal(err)
		}
		var got any
		var err error
		switch name {
		case "seed":
			got, err = LoadSeed(path)
		case "relay":
			got, err = LoadRelay(path)
		case "client":
			got, err = LoadClient(path)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, cfg) {
			t.Fatalf("%s: loaded %+v, wrote %+v", name, got, cfg)
		}
	}
}
