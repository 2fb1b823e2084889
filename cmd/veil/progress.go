package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// How progress is shown (issue 16 item 9).
const (
	// barEvery bounds how often the bar is redrawn on a terminal.
	barEvery = 100 * time.Millisecond
	// plainEvery is the gap between plain progress lines when stderr is a
	// file or a pipe: a log, not an animation.
	plainEvery = 5 * time.Second
	// rateWindow is how far back the rate looks: long enough to smooth
	// the bursts of a segment at a time, short enough to follow a change.
	rateWindow = 5 * time.Second
	// rateMinSpan is how much of a transfer the rate needs before it is
	// shown: a first segment that lands 10 ms after the bar appeared
	// would read as gigabytes a second.
	rateMinSpan = time.Second
	// barWidth is the bar's width in cells; the whole line stays under 80
	// columns.
	barWidth = 24
	// clearLine returns to the line's start and erases it.
	clearLine = "\r\x1b[K"
)

// progress shows a transfer's bytes on stderr (stdout is the link's or
// the path's alone). On a terminal it is one bar line redrawn in place;
// otherwise a plain line every plainEvery and one at the end. The CLI's
// log goes through Write, which erases the bar before a log line and
// draws it again after, so a log line never lands inside the bar.
type progress struct {
	w    io.Writer
	what string
	tty  bool
	now  func() time.Time

	mu       sync.Mutex // guards the fields below; transfers report from several goroutines
	done     int64
	total    int64
	started  bool      // an update knew the total or had bytes: progress is shown
	start    time.Time // the first update shown
	samples  []sample  // the last rateWindow of updates, oldest first
	drawn    bool      // the bar is on the terminal, the cursor at its end
	lastOut  time.Time // the last draw or plain line
	finished bool
}

// sample is done bytes at time t.
type sample struct {
	t    time.Time
	done int64
}

// newProgress shows progress on w, as a bar only if w is a terminal.
func newProgress(w io.Writer, what string) *progress {
	return &progress{w: w, what: what, tty: isTerminal(w), now: time.Now}
}

// isTerminal reports whether w is a terminal that can redraw a line.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb"
}

// update is a transfer.Progress: done of total bytes (total 0 while a
// fetch does not know it yet).
func (p *progress) update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished || (!p.started && total <= 0 && done == 0) {
		return
	}
	now := p.now()
	if !p.started {
		p.started, p.start = true, now
	}
	p.done, p.total = done, total
	p.samples = append(p.samples, sample{now, done})
	// Keep one sample at or before the window's start, so the rate always
	// spans the whole window once the transfer is that old.
	for len(p.samples) > 2 && now.Sub(p.samples[1].t) >= rateWindow {
		p.samples = p.samples[1:]
	}
	switch {
	case p.tty && now.Sub(p.lastOut) >= barEvery:
		p.draw(now)
	case !p.tty && now.Sub(p.start) >= plainEvery && now.Sub(p.lastOut) >= plainEvery:
		fmt.Fprintf(p.w, "veil: %s: %s\n", p.what, p.status(now, false))
		p.lastOut = now
	}
}

// rate is bytes a second over the samples, and false until they span
// rateMinSpan with bytes moved.
func (p *progress) rate() (float64, bool) {
	if len(p.samples) < 2 {
		return 0, false
	}
	first, last := p.samples[0], p.samples[len(p.samples)-1]
	span := last.t.Sub(first.t)
	if span < rateMinSpan || last.done <= first.done {
		return 0, false
	}
	return float64(last.done-first.done) / span.Seconds(), true
}

// status is the progress in words: bytes, share done, rate and time left.
func (p *progress) status(now time.Time, bar bool) string {
	var b strings.Builder
	if p.total > 0 {
		frac := min(float64(p.done)/float64(p.total), 1)
		if bar {
			fill := int(frac * barWidth)
			fmt.Fprintf(&b, "%3.0f%% [%s%s] ", 100*frac, strings.Repeat("=", fill), strings.Repeat(" ", barWidth-fill))
			fmt.Fprintf(&b, "%s/%s", megabytes(p.done), megabytes(p.total))
		} else {
			fmt.Fprintf(&b, "%s of %s (%.0f%%)", megabytes(p.done), megabytes(p.total), 100*frac)
		}
	} else {
		b.WriteString(megabytes(p.done))
	}
	r, ok := p.rate()
	if !ok {
		if bar {
			b.WriteString("  -- MB/s")
		}
		return b.String()
	}
	fmt.Fprintf(&b, "  %s/s", megabytes(int64(r)))
	if p.total > p.done {
		left := time.Duration(float64(p.total-p.done) / r * float64(time.Second))
		fmt.Fprintf(&b, "  %s left", left.Round(time.Second))
	}
	return b.String()
}

// megabytes writes n bytes in MB with one decimal.
func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// draw redraws the bar line. p.mu must be held.
func (p *progress) draw(now time.Time) {
	fmt.Fprintf(p.w, "%s%s %s", clearLine, p.what, p.status(now, true))
	p.drawn, p.lastOut = true, now
}

// Write writes a log line: on a terminal it erases the bar first and
// draws it again below the line.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		io.WriteString(p.w, clearLine)
	}
	n, err := p.w.Write(b)
	if p.drawn && !p.finished {
		p.draw(p.now())
	}
	return n, err
}

// finish ends the progress: on a terminal the bar shows where it stopped
// and its line is ended; elsewhere a transfer that completed says how
// long it took. Log lines after it pass straight through.
func (p *progress) finish(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	now := p.now()
	switch {
	case p.tty && p.started:
		if ok && p.total > 0 {
			p.done = p.total
		}
		p.draw(now)
		io.WriteString(p.w, "\n")
		p.drawn = false
	case !p.tty && ok && p.started:
		took := now.Sub(p.start)
		fmt.Fprintf(p.w, "veil: %s: %s in %s\n", p.what, megabytes(p.done), took.Round(100*time.Millisecond))
	}
}
