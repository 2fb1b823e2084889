// Package nodestatus is `veil status` for an operator: what the pinned
// seeds say about one node (listed or not by each, its flags, the weight
// each measured and the combined view's, Running as each seed's
// reachability check), and what the node's own /metrics say while it runs
// (uptime, traffic, circuits). It never calls a cached document the
// network's fresh word: a report built from a disk cache because no seed
// answered says so in its state and beside every seed.
package nodestatus
