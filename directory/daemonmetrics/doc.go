// Package daemonmetrics is what every veil daemon (relay, seed, proxy)
// shares for /metrics: a private Prometheus registry with the Go runtime,
// process, build and uptime collectors, a listener that refuses a
// non-loopback address unless the operator said metrics_public = true, and
// the HTTP server that serves the registry there.
//
// Each daemon has its own registry, never Prometheus's global default, so
// that several relays in one test process do not collide. Labels take
// their values from fixed sets (refusal reasons, destroy reasons): never an
// address, a node ID or a circuit ID, because a relay's metrics are often
// public.
package daemonmetrics
