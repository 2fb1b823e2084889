package metricstest

import "testing"

// TestLooksIdentifying: what a label must never carry is caught, and the
// values veil's labels do carry are not.
func TestLooksIdentifying(t *testing.T) {
	for _, v := range []string{
		"127.0.0.1", "10.0.0.0/16", "[::1]:9001", "::1", "fe80::1%eth0", "example.org:443", "localhost",
		"more than 8 relays in 10.1.0.0/16", "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst",
		"deadbeefcafef00d", "2147483649",
	} {
		if !LooksIdentifying(v) {
			t.Errorf("LooksIdentifying(%q) = false", v)
		}
	}
	for _, v := range []string{
		"TAMPERED", "peer_share", "relay", "(devel)", "go1.26.8", "2", "0.005", "+Inf", "2.5", "ok", "failed",
		"allowlist", "slash16", "v1.2.3",
	} {
		if LooksIdentifying(v) {
			t.Errorf("LooksIdentifying(%q) = true", v)
		}
	}
}

// TestCheckRefuses: a page that does not parse, that lint faults, or that
// carries an address in a label is refused.
func TestCheckRefuses(t *testing.T) {
	good := "# HELP veil_x_total Things.\n# TYPE veil_x_total counter\nveil_x_total{reason=\"TIMEOUT\"} 3\n"
	got, err := Check([]byte(good))
	if err != nil || got[`veil_x_total{reason="TIMEOUT"}`] != 3 {
		t.Fatalf("Check(good) = %v, %v", got, err)
	}
	for name, bad := range map[string]string{
		"parse":   "veil_x_total{reason=\"TIMEOUT\" 3\n",
		"lint":    "# HELP veil_x Things.\n# TYPE veil_x counter\nveil_x 3\n",
		"no help": "# TYPE veil_x_total counter\nveil_x_total 3\n",
		"address": "# HELP veil_x_total Things.\n# TYPE veil_x_total counter\nveil_x_total{peer=\"10.0.0.1:9001\"} 3\n",
		"circuit": "# HELP veil_x_total Things.\n# TYPE veil_x_total counter\nveil_x_total{circ=\"2147483649\"} 3\n",
	} {
		if _, err := Check([]byte(bad)); err == nil {
			t.Errorf("Check(%s) succeeded", name)
		}
	}
}
