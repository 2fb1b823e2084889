package relay

import (
	"slices"

	"veil/conf"
)

// liveKeys are the relay config keys a reload (SIGHUP) applies while the
// relay runs: the exit policy for every stream opened from then on, and
// what the descriptor says (republished at once), shutdown_wait for a
// drain that starts later; log_level is
// the caller's, whose logger it is. Everything else is bound into
// listeners, keys, gossip or tables when the relay starts.
var liveKeys = []string{"log_level", "exit_policy", "contact", "family", "nickname", "bandwidth_rate", "shutdown_wait"}

// Reload applies what of next can change while the relay runs and
// returns the keys it applied and those that differ but need a restart
// (which keep their old values). next must be a validated config
// (conf.LoadRelay).
func (r *Relay) Reload(next *conf.Relay) (applied, restart []string) {
	cur := r.pub.config()
	for _, k := range conf.Changed(cur, next) {
		if slices.Contains(liveKeys, k) || slices.Contains(limitKeys, k) {
			applied = append(applied, k)
		} else {
			restart = append(restart, k)
		}
	}
	if len(applied) == 0 {
		return nil, restart
	}
	upd := *cur
	upd.LogLevel, upd.ExitPolicy, upd.Contact = next.LogLevel, next.ExitPolicy, next.Contact
	upd.Family, upd.Nickname, upd.BandwidthRate = next.Family, next.Nickname, next.BandwidthRate
	upd.ShutdownWait = next.ShutdownWait // read when a drain starts
	if e := r.eng.Load(); e != nil && e.exiter != nil && slices.Contains(applied, "exit_policy") {
		e.exiter.setPolicy(upd.Policy())
	}
	r.applyLimits(&upd, next)
	r.pub.setConfig(&upd)
	select {
	case r.republishNow <- struct{}{}:
	default: // one is pending already
	}
	return applied, restart
}
