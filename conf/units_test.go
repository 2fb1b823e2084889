package conf

import (
	"testing"
	"time"
)

func TestDurationText(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		out  string
	}{
		{"60s", time.Minute, "1m"},
		{"90s", 90 * time.Second, "90s"},
		{"168h", 7 * 24 * time.Hour, "168h"},
		{"1h30m", 90 * time.Minute, "90m"},
		{"250ms", 250 * time.Millisecond, "250ms"},
		{"1500us", 1500 * time.Microsecond, "1.5ms"},
		{"0s", 0, "0s"},
	} {
		var d Duration
		if err := d.UnmarshalText([]byte(tt.in)); err != nil || d.D() != tt.want {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", tt.in, d.D(), err, tt.want)
		}
		if got := d.String(); got != tt.out {
			t.Errorf("Duration(%v).String() = %q, want %q", tt.want, got, tt.out)
		}
		var back Duration
		if err := back.UnmarshalText([]byte(d.String())); err != nil || back != d {
			t.Errorf("round trip of %q: %v, %v", d, back, err)
		}
	}
	for _, bad := range []string{"", "60", "ten minutes", "1d"} {
		var d Duration
		if err := d.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) = nil error", bad)
		}
	}
}

func TestSizeText(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Size
		out  string
	}{
		{"512MiB", 512 * MiB, "512MiB"},
		{"10GiB", 10 * GiB, "10GiB"},
		{"1024KiB", MiB, "1MiB"},
		{"2TiB", 2 * TiB, "2TiB"},
		{"1000", 1000, "1000B"},
		{"1000B", 1000, "1000B"},
		{"0", 0, "0B"},
	} {
		var s Size
		if err := s.UnmarshalText([]byte(tt.in)); err != nil || s != tt.want {
			t.Errorf("UnmarshalText(%q) = %d, %v; want %d", tt.in, s, err, tt.want)
		}
		if got := s.String(); got != tt.out {
			t.Errorf("Size(%d).String() = %q, want %q", s, got, tt.out)
		}
	}
	for _, bad := range []string{"", "10GB", "1.5GiB", "-1", "MiB", "10 MiB", "99999999999999999999", "20000000TiB"} {
		var s Size
		if err := s.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) = %d, nil error", bad, s)
		}
	}
}
