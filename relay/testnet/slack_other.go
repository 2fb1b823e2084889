//go:build !linux

package testnet

import (
	"os/exec"
	"time"
)

// startWithTimerSlack starts cmd; only Linux lets a parent choose its
// children's timer slack.
func startWithTimerSlack(cmd *exec.Cmd, _ time.Duration) error { return cmd.Start() }
