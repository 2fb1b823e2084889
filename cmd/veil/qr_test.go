package main

import (
	"bytes"
	"strings"
	"testing"

	"rsc.io/qr"
)

// TestQRDrawsEveryModule reads the half-block drawing back, module by
// module, and compares it with the code, quiet zone included.
func TestQRDrawsEveryModule(t *testing.T) {
	link := "veil:" + strings.Repeat("ab3x", 29)
	var b bytes.Buffer
	if err := writeQR(&b, link); err != nil {
		t.Fatal(err)
	}
	code, err := qr.Encode(link, qr.M)
	if err != nil {
		t.Fatal(err)
	}
	side := code.Size + 2*qrQuietZone
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != (side+1)/2 {
		t.Fatalf("%d lines for %d module rows", len(lines), side)
	}
	for ly, line := range lines {
		cells := []rune(line)
		if len(cells) != side {
			t.Fatalf("line %d: %d columns, want %d", ly, len(cells), side)
		}
		for x, c := range cells {
			top := c == '█' || c == '▀'
			bottom := c == '█' || c == '▄'
			y := 2 * ly
			if top != !code.Black(x-qrQuietZone, y-qrQuietZone) {
				t.Fatalf("module (%d,%d) drawn wrong", x, y)
			}
			if y+1 < side && bottom != !code.Black(x-qrQuietZone, y+1-qrQuietZone) {
				t.Fatalf("module (%d,%d) drawn wrong", x, y+1)
			}
		}
	}
}

// TestProgressWaitsForTheSize: a fetch's bar stays silent until the
// manifest gives the size, then shows bytes and a rate.
func TestProgressWaitsForTheSize(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, "fetch")
	p.update(0, 0)
	if b.Len() != 0 {
		t.Fatalf("drew %q before the size was known", b.String())
	}
	p.update(5e6, 10e6)
	p.update(10e6, 10e6)
	p.finish(true)
	if out := b.String(); !strings.Contains(out, "fetch") || !strings.Contains(out, "10 MB") || !strings.HasSuffix(out, "\n") {
		t.Fatalf("progress drew %q", out)
	}
}
