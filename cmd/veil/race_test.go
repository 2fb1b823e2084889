//go:build race

package main

// raceEnabled says this test binary was built with -race: veilBinary then
// builds veil with -race too, so the processes the tests start run under
// the race detector, and `go test` without -race stays fast.
const raceEnabled = true
