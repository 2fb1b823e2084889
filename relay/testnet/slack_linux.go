package testnet

import (
	"os/exec"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// startWithTimerSlack starts cmd with the given timer slack, which the
// child and every thread it makes inherit (prctl(2), PR_SET_TIMERSLACK).
// The slack is set on a thread locked for the purpose and restored before
// the thread is unlocked, so no other goroutine of this process runs with
// it; the thread lives on because cmd's Pdeathsig fires when the thread
// that started it ends.
func startWithTimerSlack(cmd *exec.Cmd, slack time.Duration) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		return cmd.Start() // no slack to set here: start as is
	}
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(slack.Nanoseconds()), 0, 0, 0); err != nil {
		return cmd.Start()
	}
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)
	return cmd.Start()
}
