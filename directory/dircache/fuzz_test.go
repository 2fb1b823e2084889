package dircache

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"testing"
)

// FuzzServeStream feeds ServeStream any bytes a client could send on a
// BEGIN_DIR stream. Whatever they are, it must not panic, and what it
// writes back must be whole HTTP/1.1 responses, one per request it read,
// at most MaxRequestsPerStream, each with a status of SPEC.md §8 and every
// 200 to a GET carrying the document exactly (gzipped or not).
func FuzzServeStream(f *testing.F) {
	c, doc, path := served(f)
	for _, seed := range []string{
		// Valid: the request a veil client sends.
		"GET " + path + " HTTP/1.1\r\nHost: veil\r\nUser-Agent: veil\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
		// Valid: two pipelined, the second with the digest held.
		"GET " + path + " HTTP/1.1\r\nHost: veil\r\n\r\nGET " + path + " HTTP/1.1\r\nHost: veil\r\nIf-None-Match: *\r\n\r\n",
		// Valid: HEAD, and HTTP/1.0 (closes after one).
		"HEAD " + path + " HTTP/1.0\r\n\r\n",
		// Valid: an unknown seed (404) and a wrong method (405).
		"GET /veil/v1/consensus/aaaa HTTP/1.1\r\nHost: veil\r\n\r\nPUT " + path + " HTTP/1.1\r\nHost: veil\r\n\r\n",
		// Invalid: a body, chunked, a bare LF, garbage, nothing.
		"GET " + path + " HTTP/1.1\r\nHost: veil\r\nContent-Length: 1\r\n\r\nx",
		"GET " + path + " HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET " + path + " HTTP/1.1\nHost: veil\n\n",
		"\x00\xff\r\n\r\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(in), &out}
		c.ServeStream(context.Background(), rw, func() {})
		// The requests as net/http reads them, for their methods: the
		// server reads them the same way, with a byte budget that can
		// only make it refuse sooner (with a 400, its last response).
		reqs := bufio.NewReader(bytes.NewReader(in))
		br := bufio.NewReader(&out)
		for n := 0; ; n++ {
			if _, err := br.Peek(1); err == io.EOF {
				return
			}
			if n == MaxRequestsPerStream {
				t.Fatalf("more than %d responses", MaxRequestsPerStream)
			}
			method := ""
			if req, err := http.ReadRequest(reqs); err == nil {
				method = req.Method
			}
			if head, _ := br.Peek(12); string(head) == "HTTP/1.1 400" {
				// Refused requests are answered with a body whatever
				// their method: the server may not have read it.
				method = ""
			}
			resp, err := http.ReadResponse(br, &http.Request{Method: method})
			if err != nil {
				t.Fatalf("response %d does not parse: %v\n%q", n, err, out.Bytes())
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("response %d: body: %v", n, err)
			}
			switch resp.StatusCode {
			case 200, 304, 400, 404, 405:
			default:
				t.Fatalf("response %d: status %d", n, resp.StatusCode)
			}
			if resp.StatusCode == 200 && method == http.MethodGet {
				if resp.Header.Get("Content-Encoding") == "gzip" {
					zr, err := gzip.NewReader(bytes.NewReader(body))
					if err != nil {
						t.Fatalf("response %d: %v", n, err)
					}
					body, _ = io.ReadAll(zr)
				}
				if !bytes.Equal(body, doc.Bytes()) {
					t.Fatalf("response %d: a body that is not the document", n)
				}
			}
			if resp.StatusCode == 400 && n+1 < MaxRequestsPerStream {
				if _, err := br.Peek(1); err != io.EOF {
					t.Fatalf("bytes after a 400")
				}
				return
			}
		}
	})
}
