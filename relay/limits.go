package relay

import (
	"veil/conf"
)

// limitKeys are the bandwidth-cap keys a reload applies at once: the new
// rate and burst govern every link's next request for tokens, and the
// descriptor, which advertises the lower of the cap and bandwidth_rate,
// is republished. (Kept apart from liveKeys, whose other keys reload.go
// applies itself.)
var limitKeys = []string{"relay_bandwidth_rate", "relay_bandwidth_burst"}

// applyLimits copies the cap of next into upd, the config being
// reloaded, and sets it on the links' limiter.
func (r *Relay) applyLimits(upd, next *conf.Relay) {
	if upd.RelayBandwidthRate == next.RelayBandwidthRate && upd.RelayBandwidthBurst == next.RelayBandwidthBurst {
		return
	}
	upd.RelayBandwidthRate, upd.RelayBandwidthBurst = next.RelayBandwidthRate, next.RelayBandwidthBurst
	r.limiter.Set(uint64(upd.RelayBandwidthRate), uint64(upd.RelayBurst()))
	r.log.Info("bandwidth cap set", "rate", upd.RelayBandwidthRate, "burst", upd.RelayBurst())
}
