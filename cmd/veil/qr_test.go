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
