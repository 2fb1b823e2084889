package client

import (
	"errors"
	"sync"

	"veil/relay/path"
)

// whyNoCircuit says at info why the client builds no circuit, once per
// distinct reason until a circuit is built again (issue 16 item 1). Without it a proxy
// whose network cannot carry a circuit (too few relays, none with the
// Guard or Exit flag) refused every SOCKS request and said why only at
// debug. A path that cannot be drawn is its own reason, by its message,
// which never names a destination (relay/path); failed builds are one
// reason, however their errors differ, so a relay restarting does not
// log a line per attempt.
type whyNoCircuit struct {
	mu   sync.Mutex // guards last
	last string     // the reason logged last; "" once a circuit is built
}

// buildFailed is the reason every failed build is logged under.
const buildFailed = "build"

// noCircuit notes that no circuit could be had because of err, and logs it
// if its reason differs from the last one logged.
func (cl *Client) noCircuit(err error) {
	reason := buildFailed
	switch {
	case errors.Is(err, path.ErrNoGuard), errors.Is(err, path.ErrNoExitRelay), errors.Is(err, path.ErrNoPath):
		reason = err.Error()
	case errors.Is(err, path.ErrNoExit):
		// No exit for one destination (a spare's, or a request's) is
		// that destination's answer, not the network's state.
		return
	}
	w := &cl.why
	w.mu.Lock()
	same := w.last == reason
	w.last = reason
	w.mu.Unlock()
	if same {
		return
	}
	if reason == buildFailed {
		cl.log.Info("client: no circuit: building one failed; retrying", "err", err)
		return
	}
	cl.log.Info("client: no circuit can be built", "why", err)
}

// circuitBuilt notes that a circuit was built, so the next failure is
// logged again, and says so if a failure was logged.
func (cl *Client) circuitBuilt() {
	w := &cl.why
	w.mu.Lock()
	was := w.last
	w.last = ""
	w.mu.Unlock()
	if was != "" {
		cl.log.Info("client: circuits are built again")
	}
}
