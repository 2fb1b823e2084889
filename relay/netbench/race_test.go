//go:build race

package netbench

// raceEnabled says this test binary was built with -race: TestQuick then
// builds veil with -race too, so the testnet's processes run under the
// race detector, and `go test` without -race stays fast.
const raceEnabled = true
