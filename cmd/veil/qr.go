package main

import (
	"io"
	"strings"

	"rsc.io/qr"
)

// qrQuietZone is the blank border, in modules, that scanners need
// (ISO/IEC 18004 asks for 4).
const qrQuietZone = 4

// writeQR draws text as a QR code with Unicode half blocks, two rows of
// modules per line. Light modules are drawn as blocks, as `qrencode -t
// UTF8` does, so the code reads right on the usual dark terminal.
func writeQR(w io.Writer, text string) error {
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		return err
	}
	light := func(x, y int) bool { return !code.Black(x-qrQuietZone, y-qrQuietZone) }
	side := code.Size + 2*qrQuietZone
	var b strings.Builder
	for y := 0; y < side; y += 2 {
		for x := 0; x < side; x++ {
			top, bottom := light(x, y), y+1 < side && light(x, y+1)
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	_, err = io.WriteString(w, b.String())
	return err
}
