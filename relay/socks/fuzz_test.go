package socks

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// Each target demands that whatever parses re-marshals to the bytes it was
// parsed from (for a request: unless the wire form was one of the two
// non-canonical ones SPEC.md §3 canonicalises), that the io.Reader form
// agrees with the slice form, and that nothing panics.

func FuzzParseGreeting(f *testing.F) {
	for _, b := range validGreetings {
		f.Add(b) // valid
	}
	f.Add([]byte{})                       // invalid: empty
	f.Add([]byte{0x05})                   // invalid: no NMETHODS
	f.Add([]byte{0x05, 0x00})             // invalid: no methods
	f.Add([]byte{0x05, 0x03, 0x00, 0x02}) // invalid: one method short
	f.Add([]byte{0x04, 0x01, 0x00, 0x50}) // invalid: a SOCKS4 request
	f.Add([]byte("GET / HTTP/1.1\r\n"))   // invalid: HTTP on the SOCKS port
	f.Fuzz(func(t *testing.T, b []byte) {
		g, n, err := ParseGreeting(b)
		checkReaderAgrees(t, b, err, func(r io.Reader) error {
			rg, rerr := ReadGreeting(r)
			if rerr == nil && !bytes.Equal(rg.Methods, g.Methods) {
				t.Fatalf("ReadGreeting = %x, ParseGreeting = %x", rg.Methods, g.Methods)
			}
			return rerr
		})
		if err != nil {
			return
		}
		out, err := MarshalGreeting(g)
		if err != nil || !bytes.Equal(out, b[:n]) {
			t.Fatalf("MarshalGreeting(ParseGreeting(%x)) = %x, %v", b[:n], out, err)
		}
	})
}

func FuzzParseUserPass(f *testing.F) {
	for _, b := range validUserPass {
		f.Add(b) // valid
	}
	f.Add([]byte{0x01, 0x01, 'a', 0x00, 0xee}) // valid, with a trailing byte
	f.Add([]byte{})                            // invalid: empty
	f.Add([]byte{0x05, 0x01, 'a', 0x01, 'b'})  // invalid: SOCKS version, not 1
	f.Add([]byte{0x01, 0x00, 0x01, 'b'})       // invalid: empty username
	f.Add([]byte{0x01, 0x02, 'a'})             // invalid: username cut short
	f.Add([]byte{0x01, 0x01, 'a', 0x02, 'b'})  // invalid: password cut short
	f.Add([]byte{0x01, 0xff, 'a', 0xff, 'b'})  // invalid: lengths beyond the data
	f.Fuzz(func(t *testing.T, b []byte) {
		c, n, err := ParseUserPass(b)
		checkReaderAgrees(t, b, err, func(r io.Reader) error {
			rc, rerr := ReadUserPass(r)
			if rerr == nil && rc != c {
				t.Fatalf("ReadUserPass = %+v, ParseUserPass = %+v", rc, c)
			}
			return rerr
		})
		if err != nil {
			return
		}
		out, err := MarshalUserPass(c)
		if err != nil || !bytes.Equal(out, b[:n]) {
			t.Fatalf("MarshalUserPass(ParseUserPass(%x)) = %x, %v", b[:n], out, err)
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	for _, tc := range validRequests {
		f.Add(tc.b) // valid
	}
	dom := func(h string) []byte {
		return append(append([]byte{0x05, 0x01, 0x00, 0x03, byte(len(h))}, h...), 0, 80)
	}
	f.Add(dom("127.0.0.1"))                                                                                    // valid, canonicalised: IP-literal domain
	f.Add(dom("::ffff:1.2.3.4"))                                                                               // valid, canonicalised twice
	f.Add(append([]byte{0x05, 0x01, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4}, 0, 80)) // valid, canonicalised: IPv4-mapped
	f.Add([]byte{})                                                                                            // invalid: empty
	f.Add([]byte{0x05, 0x01, 0x00})                                                                            // invalid: no ATYP
	f.Add([]byte{0x05, 0x01, 0x00, 0x03})                                                                      // invalid: no domain length
	f.Add([]byte{0x05, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0})                                                       // invalid: port cut short
	f.Add([]byte{0x04, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0, 80})                                                   // invalid: version 4
	f.Add([]byte{0x05, 0x07, 0x00, 0x01, 1, 2, 3, 4, 0, 80})                                                   // invalid: unknown command
	f.Add([]byte{0x05, 0x01, 0x01, 0x01, 1, 2, 3, 4, 0, 80})                                                   // invalid: reserved byte set
	f.Add([]byte{0x05, 0x01, 0x00, 0x02, 1, 2, 3, 4, 0, 80})                                                   // invalid: address type 2
	f.Add([]byte{0x05, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0, 0})                                                    // invalid: CONNECT to port 0
	f.Add([]byte{0x05, 0x01, 0x00, 0x03, 0x00, 0, 80})                                                         // invalid: empty domain
	f.Add(dom("a b"))                                                                                          // invalid: space
	f.Add(dom("a\x00b"))                                                                                       // invalid: NUL
	f.Add(dom("10.1"))                                                                                         // invalid: an IPv4 address in disguise
	f.Add(dom("fe80::1%eth0"))                                                                                 // invalid: zone
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := ParseRequest(b)
		checkReaderAgrees(t, b, err, func(rd io.Reader) error {
			rr, rerr := ReadRequest(rd)
			if rerr == nil && rr != r {
				t.Fatalf("ReadRequest = %+v, ParseRequest = %+v", rr, r)
			}
			return rerr
		})
		if err != nil {
			return
		}
		out, err := MarshalRequest(r)
		if err != nil {
			t.Fatalf("MarshalRequest(ParseRequest(%x)) = %v", b[:n], err)
		}
		canonical := !(b[3] == AtypDomain && r.Host == "") && !(b[3] == AtypIPv6 && r.Addr.Is4())
		if canonical && !bytes.Equal(out, b[:n]) {
			t.Fatalf("MarshalRequest(ParseRequest(%x)) = %x", b[:n], out)
		}
		if r2, n2, err := ParseRequest(out); err != nil || r2 != r || n2 != len(out) {
			t.Fatalf("ParseRequest(MarshalRequest(%+v)) = %+v, %d, %v", r, r2, n2, err)
		}
	})
}

// checkReaderAgrees runs read on b and demands the result the slice parser
// gave: success together, the same error kind, or an early end of input
// where the slice parser saw a truncated message.
func checkReaderAgrees(t *testing.T, b []byte, parseErr error, read func(io.Reader) error) {
	t.Helper()
	err := read(bytes.NewReader(b))
	switch {
	case parseErr == nil:
		if err != nil {
			t.Fatalf("parser accepted %x, reader: %v", b, err)
		}
	case errors.Is(parseErr, ErrTruncated):
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("parser: %v; reader: %v", parseErr, err)
		}
	default:
		var pe *ParseError
		errors.As(parseErr, &pe)
		if !errors.Is(err, pe.Kind) {
			t.Fatalf("parser: %v; reader: %v", parseErr, err)
		}
	}
}
