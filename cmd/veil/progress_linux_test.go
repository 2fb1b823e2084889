package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: what the child writes to tty, the test
// reads from ptm.
func openPTY(t *testing.T) (ptm, tty *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ptm, tty
}

// TestProgressBarOnTerminal (issue 16 item 9): a fetch at debug level
// with stderr on a terminal draws its bar, and every log line it writes
// meanwhile (the shard requests line comes while the bar is up) starts
// on a line of its own, the bar erased before it; with stderr a pipe, no
// escape code is written at all.
func TestProgressBarOnTerminal(t *testing.T) {
	_, m := startTestnet(t, 6)
	debugClient(t, m)
	dir := t.TempDir()
	_, link := shareRandom(t, m, dir, 8<<20+3)

	ptm, tty := openPTY(t)
	defer ptm.Close()
	cmd := exec.Command(veilBinary(t), "fetch", "--config", m.ClientConfig, "-o", filepath.Join(dir, "tty"), link)
	cmd.Stderr = tty
	cmd.Env = append(os.Environ(), "TERM=xterm")
	var screen bytes.Buffer
	read := make(chan struct{})
	go func() { io.Copy(&screen, ptm); close(read) }() // ends with EIO once tty is closed everywhere
	if err := cmd.Run(); err != nil {
		t.Fatalf("fetch on a terminal: %v", err)
	}
	tty.Close()
	<-read
	out := strings.ReplaceAll(screen.String(), "\r\n", "\n")
	if !strings.Contains(out, clearLine+"fetch ") || !strings.Contains(out, "100% [") {
		t.Fatalf("no bar drawn on the terminal:\n%q", out)
	}
	logs := 0
	for line := range strings.SplitSeq(out, "\n") {
		if !strings.Contains(line, "level=") {
			continue
		}
		logs++
		// What the terminal shows of the line: what follows the last
		// erase, if any.
		if shown := line[strings.LastIndex(line, clearLine)+1:]; !strings.HasPrefix(strings.TrimPrefix(shown, clearLine[1:]), "time=") {
			t.Fatalf("a log line shares its line with the bar: %q", line)
		}
	}
	if logs == 0 || !shardRequests.MatchString(out) {
		t.Fatalf("no log line while the bar was up:\n%q", out)
	}
	t.Logf("%d log lines on the terminal, each on its own line", logs)

	code, _, errOut := veilIn(t, dir, "fetch", "--config", m.ClientConfig, "-o", filepath.Join(dir, "pipe"), link)
	if code != 0 || strings.ContainsAny(errOut, "\r\x1b") {
		t.Fatalf("fetch to a pipe: exit %d, escape codes: %q", code, errOut)
	}
}
