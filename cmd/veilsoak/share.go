package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"veil/relay/netbench"
)

// sharer runs `veil share` and `veil fetch` as a user does: processes of
// the binary with the testnet's client config.
type sharer struct {
	veil    string
	config  string
	dir     string // scratch files and the processes' stderr
	size    int64
	timeout time.Duration
	tally   *tally
	seq     int
}

// run shares and fetches back a file every interval until phase ends.
func (s *sharer) run(ctx, phase context.Context, every time.Duration) {
	for phase.Err() == nil && ctx.Err() == nil {
		s.once(ctx)
		select {
		case <-time.After(every):
		case <-phase.Done():
		case <-ctx.Done():
		}
	}
}

// once shares a fresh random file, fetches the link to a new file and
// checks that the copy is bit-exact. The files are removed after; the
// logs are kept only when something failed.
func (s *sharer) once(ctx context.Context) {
	s.seq++
	in := filepath.Join(s.dir, fmt.Sprintf("share-%d.in", s.seq))
	out := filepath.Join(s.dir, fmt.Sprintf("share-%d.out", s.seq))
	logPath := filepath.Join(s.dir, fmt.Sprintf("share-%d.log", s.seq))
	defer os.Remove(in)
	defer os.Remove(out)
	want, err := netbench.WriteRandom(in, s.size)
	if err != nil {
		s.tally.done(kindShare, 0, 0, fmt.Errorf("write the file to share: %w", err))
		return
	}
	var link bytes.Buffer
	t0 := time.Now()
	err = s.veilCmd(ctx, logPath, &link, nil, "share", "--config", s.config, in)
	linkText := strings.TrimSpace(link.String())
	if err == nil && !strings.HasPrefix(linkText, "veil:") {
		err = fmt.Errorf("veil share printed %q, not a veil: link", linkText)
	}
	s.tally.done(kindShare, s.size, time.Since(t0), err)
	if err != nil {
		return
	}
	// The link goes on standard input: it is the file's key, and ps shows
	// arguments on a shared machine.
	t0 = time.Now()
	err = s.veilCmd(ctx, logPath, io.Discard, strings.NewReader(linkText), "fetch", "--config", s.config, "-o", out, "-")
	if err == nil {
		var got []byte
		if got, err = netbench.FileSHA256(out); err == nil && !bytes.Equal(got, want) {
			err = fmt.Errorf("fetched file's SHA-256 is %x, the shared file's %x", got, want)
		}
	}
	s.tally.done(kindFetch, s.size, time.Since(t0), err)
	if err == nil {
		os.Remove(logPath)
	}
}

// veilCmd runs the veil binary, stderr appended to logPath, bounded by
// the timeout.
func (s *sharer) veilCmd(ctx context.Context, logPath string, stdout io.Writer, stdin io.Reader, args ...string) error {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.veil, args...)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = stdout, lf, stdin
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("veil %s: %w (log: %s)", args[0], err, logPath)
	}
	return nil
}
