package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// fakeClock is a progress's clock, moved by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func testProgress(tty bool) (*progress, *bytes.Buffer, *fakeClock) {
	var out bytes.Buffer
	c := &fakeClock{t: time.Unix(1000, 0)}
	return &progress{w: &out, what: "fetch", tty: tty, now: c.now}, &out, c
}

// lastDraw is the bar as last drawn.
func lastDraw(out *bytes.Buffer) string {
	s := out.String()
	return s[strings.LastIndex(s, clearLine)+len(clearLine):]
}

// TestProgressRateStartsSane: a first segment that lands 10 ms after the
// bar appeared shows no rate (before, 1 MB in 10 ms read as 100 MB/s);
// once a second of the transfer is seen, the rate is what it moved.
func TestProgressRateStartsSane(t *testing.T) {
	p, out, c := testProgress(true)
	p.update(0, 100e6)
	c.advance(10 * time.Millisecond)
	p.update(1e6, 100e6)
	c.advance(100 * time.Millisecond)
	p.update(2e6, 100e6)
	if got := lastDraw(out); !strings.Contains(got, "-- MB/s") || strings.Contains(got, "left") {
		t.Fatalf("rate shown after 110 ms: %q", got)
	}
	for range 10 {
		c.advance(200 * time.Millisecond)
		p.update(p.done+1e6, 100e6)
	}
	// 12 MB in 2.11 s: 5.7 MB/s.
	if got := lastDraw(out); !strings.Contains(got, "5.7 MB/s") {
		t.Fatalf("after 2.11 s: %q", got)
	}
}

// TestProgressRateFromAShareFirstReport: a share reports its first
// window of 8 segments as it encodes them, all at once; the bar of
// 79011c9, fed 8 MiB as its first report, drew "(8.4/100 MB, 195 GB/s)".
// The rate counts only bytes moved after the first report.
func TestProgressRateFromAShareFirstReport(t *testing.T) {
	p, out, c := testProgress(true)
	p.what = "share"
	p.update(8<<20, 100e6)
	c.advance(120 * time.Millisecond)
	p.update(9<<20, 100e6)
	if got := lastDraw(out); !strings.Contains(got, "-- MB/s") {
		t.Fatalf("rate shown 120 ms after the first report: %q", got)
	}
	c.advance(1380 * time.Millisecond)
	p.update(11<<20, 100e6)
	// 3 MiB in 1.5 s: 2.1 MB/s.
	if got := lastDraw(out); !strings.Contains(got, " 2.1 MB/s") {
		t.Fatalf("1.5 s after the first report: %q", got)
	}
}

// TestProgressLogLineNotSpliced: a log line written while the bar is on
// the terminal erases the bar first and is whole on its own line, and the
// bar is drawn again after it.
func TestProgressLogLineNotSpliced(t *testing.T) {
	p, out, c := testProgress(true)
	p.update(0, 10e6)
	c.advance(time.Second)
	p.update(5e6, 10e6)
	const line = "time=x level=INFO msg=\"client: guard chosen\"\n"
	p.Write([]byte(line))
	s := out.String()
	i := strings.Index(s, line)
	if i < 0 || !strings.HasSuffix(s[:i], clearLine) {
		t.Fatalf("log line not after an erased bar: %q", s)
	}
	if rest := s[i+len(line):]; !strings.HasPrefix(rest, clearLine+"fetch ") {
		t.Fatalf("bar not drawn again after the log line: %q", rest)
	}
	p.finish(true)
	if !strings.HasSuffix(out.String(), "\n") || !strings.Contains(lastDraw(out), "100%") {
		t.Fatalf("finish: %q", lastDraw(out))
	}
}

// TestProgressPlainWhenNotTerminal: to a file or pipe, no bar and no
// escape codes: a line at most every plainEvery, and one at the end.
func TestProgressPlainWhenNotTerminal(t *testing.T) {
	p, out, c := testProgress(false)
	for i := range 100 {
		p.update(int64(i)*1e5, 10e6)
		c.advance(120 * time.Millisecond)
	}
	p.Write([]byte("a log line\n"))
	p.finish(true)
	s := out.String()
	if strings.ContainsAny(s, "\r\x1b") {
		t.Fatalf("escape codes to a file: %q", s)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	// 12 s of updates: lines at 5 s and 10 s, the log line, the end.
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "veil: fetch: ") || lines[2] != "a log line" || !strings.Contains(lines[3], " in 12s") {
		t.Fatalf("%d lines: %q", len(lines), lines)
	}
}

// TestProgressWaitsForTheSize: a fetch's progress stays silent until the
// manifest gives the size, then shows bytes, on a terminal and off one.
func TestProgressWaitsForTheSize(t *testing.T) {
	for _, tty := range []bool{true, false} {
		p, out, c := testProgress(tty)
		p.update(0, 0)
		if out.Len() != 0 {
			t.Fatalf("drew %q before the size was known", out.String())
		}
		p.update(5e6, 10e6)
		c.advance(time.Second)
		p.update(10e6, 10e6)
		p.finish(true)
		if s := out.String(); !strings.Contains(s, "fetch") || !strings.Contains(s, "10.0 MB") || !strings.HasSuffix(s, "\n") {
			t.Fatalf("terminal %v: progress drew %q", tty, s)
		}
	}
}
