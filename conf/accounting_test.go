package conf

import (
	"testing"
	"time"
)

func TestParseBandwidthLimitErrors(t *testing.T) {
	for _, tc := range []badCase{
		{"cap too low", "relay_bandwidth_rate = \"64KiB\"\n", 1, "relay_bandwidth_rate", "below the least", "75KiB"},
		{"burst below rate", "relay_bandwidth_rate = \"1MiB\"\nrelay_bandwidth_burst = \"512KiB\"\n", 2, "relay_bandwidth_burst", "below the rate", "at least relay_bandwidth_rate"},
		{"burst without rate", "relay_bandwidth_burst = \"1MiB\"\n", 1, "relay_bandwidth_burst", "caps nothing", "relay_bandwidth_rate"},
		{"decimal cap", "relay_bandwidth_rate = \"20MB\"\n", 1, "relay_bandwidth_rate", `unknown unit "MB"`, ""},
		{"bad period", "accounting_start = \"year 1 00:00\"\n", 1, "accounting_start", `unknown period "year"`, ""},
		{"day 29", "\naccounting_start = \"month 29 00:00\"\n", 2, "accounting_start", `day "29" is not 1 to 28`, ""},
		{"week day 8", "accounting_start = \"week 8 10:00\"\n", 1, "accounting_start", `day "8" is not 1 to 7`, ""},
		{"bad time", "accounting_start = \"day 24:00\"\n", 1, "accounting_start", `time "24:00" is not HH:MM`, ""},
		{"day with a day", "accounting_start = \"day 3 10:00\"\n", 1, "accounting_start", "wrong number of fields", ""},
		{"bad rule", "accounting_rule = \"both\"\n", 1, "accounting_rule", `unknown accounting rule "both"`, `"max", "sum"`},
	} {
		_, err := ParseRelay("test.toml", []byte(tc.doc))
		checkBad(t, tc, err)
	}
}

func TestParseBandwidthLimits(t *testing.T) {
	r, err := ParseRelay("test.toml", []byte("bandwidth_rate = \"100MiB\"\nrelay_bandwidth_rate = 20000000\naccounting_max = \"1GiB\"\naccounting_start = \"week 3 10:00\"\naccounting_rule = \"sum\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.RelayBandwidthRate != 20_000_000 || r.RelayBurst() != 20_000_000 || r.AccountingMax != GiB || r.AccountingRule != "sum" {
		t.Errorf("parsed %+v", r)
	}
	if got := r.AccountingStart; got != (AccountingStart{PeriodWeek, 3, 10, 0}) || got.String() != "week 3 10:00" {
		t.Errorf("accounting_start = %+v (%s)", got, got)
	}
	if r.AdvertisedBandwidth() != 20_000_000 {
		t.Errorf("advertised %d with a cap of 20 MB/s below bandwidth_rate %d", r.AdvertisedBandwidth(), r.BandwidthRate)
	}
	d := DefaultRelay()
	if d.RelayBandwidthRate != 0 || d.AccountingMax != 0 || d.AccountingStart.String() != "month 1 00:00" || d.AccountingRule != "max" {
		t.Errorf("defaults are not Tor's: %+v", d)
	}
}

// TestAccountingPeriods: every period holds the time it was computed for,
// starts where AccountingStart says and ends where the next one begins.
func TestAccountingPeriods(t *testing.T) {
	loc := time.FixedZone("test", 3600)
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		start, now, begin, next string
	}{
		{"day 12:00", "2026-12-02 16:50", "2026-12-02 12:00", "2026-12-03 12:00"},
		{"day 12:00", "2026-12-02 11:59", "2026-12-01 12:00", "2026-12-02 12:00"},
		{"day 00:00", "2027-01-01 00:00", "2027-01-01 00:00", "2027-01-02 00:00"},
		// 2026-12-02 is a Wednesday (torrc's day 3).
		{"week 3 10:00", "2026-12-02 10:00", "2026-12-02 10:00", "2026-12-09 10:00"},
		{"week 3 10:00", "2026-12-02 09:59", "2026-11-25 10:00", "2026-12-02 10:00"},
		{"week 1 00:00", "2026-12-06 23:00", "2026-11-30 00:00", "2026-12-07 00:00"}, // a Sunday
		{"week 7 00:00", "2026-12-06 23:00", "2026-12-06 00:00", "2026-12-13 00:00"},
		{"month 1 00:00", "2026-12-02 16:50", "2026-12-01 00:00", "2027-01-01 00:00"},
		{"month 15 06:30", "2026-01-10 00:00", "2025-12-15 06:30", "2026-01-15 06:30"},
		{"month 28 00:00", "2026-03-01 00:00", "2026-02-28 00:00", "2026-03-28 00:00"},
	} {
		var a AccountingStart
		if err := a.UnmarshalText([]byte(tc.start)); err != nil {
			t.Fatal(err)
		}
		now := at(tc.now)
		begin := a.PeriodStart(now)
		next := a.NextPeriod(begin)
		if !begin.Equal(at(tc.begin)) || !next.Equal(at(tc.next)) {
			t.Errorf("%s at %s: period %s to %s, want %s to %s", tc.start, tc.now,
				begin.Format("2006-01-02 15:04 Mon"), next.Format("2006-01-02 15:04"), tc.begin, tc.next)
		}
		if now.Before(begin) || !now.Before(next) {
			t.Errorf("%s: %s is not in its own period", tc.start, tc.now)
		}
	}
}
