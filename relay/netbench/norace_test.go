//go:build !race

package netbench

// raceEnabled: see race_test.go.
const raceEnabled = false
