package main

import (
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress draws a byte progress bar on w (stderr: stdout is the link's
// alone): bytes, rate and time left. A fetch learns the size only from
// the manifest, so the bar appears at the first update that knows it.
type progress struct {
	w    io.Writer
	what string

	mu  sync.Mutex // guards bar; transfers report from several goroutines
	bar *progressbar.ProgressBar
}

func newProgress(w io.Writer, what string) *progress { return &progress{w: w, what: what} }

func (p *progress) update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar == nil {
		if total <= 0 && done == 0 {
			return
		}
		p.bar = progressbar.NewOptions64(max(total, 1),
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(p.what),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionOnCompletion(func() { io.WriteString(p.w, "\n") }),
		)
	}
	p.bar.Set64(done)
}

// finish completes the bar, or leaves it where it stopped after an
// error, and ends its line.
func (p *progress) finish(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.bar == nil:
	case ok:
		p.bar.Finish()
	default:
		p.bar.Exit()
		io.WriteString(p.w, "\n")
	}
}
