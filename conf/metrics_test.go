package conf

import "testing"

// TestMetricsOffLoopback: every role refuses, at metrics_addr's line, a
// metrics address that is not loopback unless metrics_public = true says
// the operator means it; loopback needs no setting.
func TestMetricsOffLoopback(t *testing.T) {
	type parser func(doc string) error
	roles := map[string]struct {
		parse parser
		extra string // what the role needs beside the keys tested
	}{
		"relay":  {func(d string) error { _, err := ParseRelay("test.toml", []byte(d)); return err }, ""},
		"seed":   {func(d string) error { _, err := ParseSeed("test.toml", []byte(d)); return err }, ""},
		"client": {func(d string) error { _, err := ParseClient("test.toml", []byte(d)); return err }, clientSeeds},
	}
	for role, r := range roles {
		for _, addr := range []string{"0.0.0.0:9100", "[::]:9100", "192.0.2.7:9100", "metrics.example:9100"} {
			doc := "\nmetrics_addr = \"" + addr + "\"\n" + r.extra
			checkBad(t, badCase{role + " " + addr, doc, 2, "metrics_addr", "not on loopback", "metrics_public = true"}, r.parse(doc))
			if err := r.parse("metrics_public = true\n" + doc); err != nil {
				t.Errorf("%s: metrics_addr %s with metrics_public = true: %v", role, addr, err)
			}
		}
		for _, addr := range []string{"127.0.0.1:9100", "[::1]:0", "localhost:9100"} {
			if err := r.parse("metrics_addr = \"" + addr + "\"\n" + r.extra); err != nil {
				t.Errorf("%s: metrics_addr %s: %v", role, addr, err)
			}
		}
	}
	if DefaultSeed().MetricsAddr != "" || DefaultSeed().MetricsPublic {
		t.Error("a seed serves metrics by default")
	}
}
