package conf

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The bandwidth keys of a relay, after torrc's RelayBandwidthRate,
// RelayBandwidthBurst, AccountingMax, AccountingStart and AccountingRule.

// MinRelayBandwidthRate is the least cap relay_bandwidth_rate accepts:
// Tor's floor for a relay's BandwidthRate (75 KBytes). Below it a relay
// carries too little to be worth a place in anyone's path.
const MinRelayBandwidthRate = 75 * KiB

// Accounting rules (accounting_rule), as torrc's AccountingRule.
const (
	// AccountingMax: sent and received each at most accounting_max.
	AccountingRuleMax = "max"
	// AccountingSum: sent plus received at most accounting_max.
	AccountingRuleSum = "sum"
	// AccountingIn: only what is received counts.
	AccountingRuleIn = "in"
	// AccountingOut: only what is sent counts.
	AccountingRuleOut = "out"
)

var accountingRules = []string{AccountingRuleMax, AccountingRuleSum, AccountingRuleIn, AccountingRuleOut}

// Accounting period units (AccountingStart.Unit).
const (
	PeriodDay   = "day"
	PeriodWeek  = "week"
	PeriodMonth = "month"
)

// AccountingStart is when each accounting period begins, written as
// torrc's AccountingStart: "day HH:MM", "week D HH:MM" (D 1 = Monday to 7
// = Sunday) or "month D HH:MM" (D 1 to 28), in the machine's local time.
type AccountingStart struct {
	Unit         string
	Day          int // day of the week (1 = Monday) or of the month; 0 for "day"
	Hour, Minute int
}

// String returns the torrc form, e.g. "month 1 00:00".
func (a AccountingStart) String() string {
	hm := fmt.Sprintf("%02d:%02d", a.Hour, a.Minute)
	if a.Unit == PeriodDay {
		return a.Unit + " " + hm
	}
	return fmt.Sprintf("%s %d %s", a.Unit, a.Day, hm)
}

func (a AccountingStart) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

func (a *AccountingStart) UnmarshalText(text []byte) error {
	s := string(text)
	bad := func(why string) error {
		return fmt.Errorf("invalid accounting start %q: %s; write \"day HH:MM\", \"week D HH:MM\" (1 = Monday) or \"month D HH:MM\" (D 1-28)", s, why)
	}
	f := strings.Fields(s)
	if len(f) == 0 {
		return bad("empty")
	}
	v := AccountingStart{Unit: f[0]}
	want := 3
	switch v.Unit {
	case PeriodDay:
		want = 2
	case PeriodWeek, PeriodMonth:
	default:
		return bad(fmt.Sprintf("unknown period %q", v.Unit))
	}
	if len(f) != want {
		return bad("wrong number of fields")
	}
	if want == 3 {
		d, err := strconv.Atoi(f[1])
		maxDay := 7
		if v.Unit == PeriodMonth {
			maxDay = 28 // every month has it
		}
		if err != nil || d < 1 || d > maxDay {
			return bad(fmt.Sprintf("day %q is not 1 to %d", f[1], maxDay))
		}
		v.Day = d
	}
	hs, ms, ok := strings.Cut(f[want-1], ":")
	h, herr := strconv.Atoi(hs)
	m, merr := strconv.Atoi(ms)
	if !ok || herr != nil || merr != nil || h < 0 || h > 23 || m < 0 || m > 59 || len(ms) != 2 {
		return bad(fmt.Sprintf("time %q is not HH:MM", f[want-1]))
	}
	v.Hour, v.Minute = h, m
	*a = v
	return nil
}

// PeriodStart returns the start of the accounting period that holds t, in
// t's location.
func (a AccountingStart) PeriodStart(t time.Time) time.Time {
	y, mo, d := t.Date()
	loc := t.Location()
	var s time.Time
	switch a.Unit {
	case PeriodMonth:
		s = time.Date(y, mo, a.Day, a.Hour, a.Minute, 0, 0, loc)
		if s.After(t) {
			s = time.Date(y, mo-1, a.Day, a.Hour, a.Minute, 0, 0, loc)
		}
	case PeriodWeek:
		// time.Weekday has Sunday = 0; torrc's week has Monday = 1.
		back := (int(t.Weekday()) + 6 - (a.Day - 1)) % 7
		s = time.Date(y, mo, d-back, a.Hour, a.Minute, 0, 0, loc)
		if s.After(t) {
			s = time.Date(y, mo, d-back-7, a.Hour, a.Minute, 0, 0, loc)
		}
	default: // day
		s = time.Date(y, mo, d, a.Hour, a.Minute, 0, 0, loc)
		if s.After(t) {
			s = time.Date(y, mo, d-1, a.Hour, a.Minute, 0, 0, loc)
		}
	}
	return s
}

// NextPeriod returns the start of the accounting period after the one
// that starts at start (a PeriodStart).
func (a AccountingStart) NextPeriod(start time.Time) time.Time {
	y, mo, d := start.Date()
	switch a.Unit {
	case PeriodMonth:
		return time.Date(y, mo+1, a.Day, a.Hour, a.Minute, 0, 0, start.Location())
	case PeriodWeek:
		return time.Date(y, mo, d+7, a.Hour, a.Minute, 0, 0, start.Location())
	default:
		return time.Date(y, mo, d+1, a.Hour, a.Minute, 0, 0, start.Location())
	}
}

// checkBandwidthLimits checks the cap and accounting keys.
func (r *Relay) checkBandwidthLimits(p *problems) {
	if r.RelayBandwidthRate != 0 && r.RelayBandwidthRate < MinRelayBandwidthRate {
		p.add(keyError("relay_bandwidth_rate", fmt.Sprintf(`give at least %s, or 0 for no cap`, MinRelayBandwidthRate),
			"relay_bandwidth_rate %s is below the least a relay may carry", r.RelayBandwidthRate))
	}
	if r.RelayBandwidthBurst != 0 && r.RelayBandwidthBurst < r.RelayBandwidthRate {
		p.add(keyError("relay_bandwidth_burst", "make it at least relay_bandwidth_rate, or 0 for the rate",
			"burst %s is below the rate %s", r.RelayBandwidthBurst, r.RelayBandwidthRate))
	}
	if r.RelayBandwidthBurst != 0 && r.RelayBandwidthRate == 0 {
		p.add(keyError("relay_bandwidth_burst", "set relay_bandwidth_rate too, or leave the burst 0",
			"a burst without a rate caps nothing"))
	}
	if r.AccountingStart.Unit == "" {
		p.add(keyError("accounting_start", `write e.g. "month 1 00:00"`, "accounting_start is empty"))
	}
	known := false
	for _, k := range accountingRules {
		known = known || r.AccountingRule == k
	}
	if !known {
		p.add(keyError("accounting_rule", `write "max", "sum", "in" or "out"`, "unknown accounting rule %q", r.AccountingRule))
	}
}

// RelayBurst returns the bucket size to use: relay_bandwidth_burst, or the
// rate when the burst is 0, as Tor does.
func (r *Relay) RelayBurst() Size {
	if r.RelayBandwidthBurst == 0 {
		return r.RelayBandwidthRate
	}
	return r.RelayBandwidthBurst
}

// AdvertisedBandwidth is the bandwidth the descriptor claims: bandwidth_rate,
// or the cap when it is lower, as Tor advertises the least of its rates.
func (r *Relay) AdvertisedBandwidth() Size {
	if r.RelayBandwidthRate != 0 && r.RelayBandwidthRate < r.BandwidthRate {
		return r.RelayBandwidthRate
	}
	return r.BandwidthRate
}
