package dircache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Limits of one directory stream (SPEC.md §8, G9).
const (
	// MaxRequestsPerStream bounds the requests one stream may carry: a
	// client sends one per pinned seed at most (dirclient.MaxSeeds), and
	// veil's own client one a stream.
	MaxRequestsPerStream = 32
	// MaxRequestBytes bounds a request's line and headers: a GET with a
	// few headers needs a few hundred bytes, as at a seed (8 KiB).
	MaxRequestBytes = 8 << 10
	// IdleTimeout ends a stream that sends no whole request for this
	// long, so an idle client holds no goroutine for ever.
	IdleTimeout = 30 * time.Second
	// WriteTimeout bounds the sending of one response: a client that
	// stops reading shuts its stream window and would otherwise hold the
	// relay's goroutine. A 4 MiB document at 100 KB/s fits, as at a seed.
	WriteTimeout = 2 * time.Minute
	// maxBufferedBody bounds a response without a Content-Length (only
	// the handler's short error texts), which is buffered to learn it.
	maxBufferedBody = 4 << 10
)

// errBadRequest: the request did not parse or broke a limit; it was
// answered with 400 and the stream ends.
var errBadRequest = errors.New("dircache: bad request")

// ServeStream answers HTTP/1.1 requests (RFC 9112) read from rw, in order,
// with Handler, until the client half-closes or ends the stream, a request
// says Connection: close, MaxRequestsPerStream were answered, or a request
// does not parse (answered 400). It returns nil then, and an error when
// rw fails, ctx ends, or the client is idle for IdleTimeout or takes
// longer than WriteTimeout to take a response: then it has called abort,
// which must make rw's pending Read and Write return (a relay ends the
// stream with it). Requests carry no body: one that has one is a 400.
func (c *Cache) ServeStream(ctx context.Context, rw io.ReadWriter, abort func()) error {
	// why says why the stream was aborted, once it was: ctx ended, or a
	// timer fired. It is set by another goroutine, before abort.
	var why atomic.Pointer[error]
	stop := func(err func() error) func() {
		return func() {
			e := err()
			if why.CompareAndSwap(nil, &e) {
				abort()
			}
		}
	}
	defer context.AfterFunc(ctx, stop(func() error { return fmt.Errorf("dircache: %w", ctx.Err()) }))()
	timer := time.AfterFunc(c.idleTimeout, stop(func() error { return errors.New("dircache: idle or slow client") }))
	defer timer.Stop()
	aborted := func() error {
		if p := why.Load(); p != nil {
			return *p
		}
		return nil
	}

	limited := &io.LimitedReader{R: rw, N: MaxRequestBytes}
	br := bufio.NewReaderSize(limited, 2<<10)
	bw := bufio.NewWriterSize(rw, 16<<10)
	h := c.Handler()
	for n := 1; ; n++ {
		timer.Reset(c.idleTimeout)
		// The budget covers this request and what bufio reads ahead of
		// the next, so memory stays bounded whatever the client sends.
		limited.N = MaxRequestBytes
		req, err := http.ReadRequest(br)
		if err != nil {
			if errors.Is(err, io.EOF) && br.Buffered() == 0 && limited.N == MaxRequestBytes {
				return nil // the client is done
			}
			if err := aborted(); err != nil {
				return err
			}
			return c.badRequest(bw, timer, err)
		}
		if req.ProtoMajor != 1 {
			return c.badRequest(bw, timer, fmt.Errorf("protocol %s", req.Proto))
		}
		if req.ContentLength != 0 || len(req.TransferEncoding) > 0 {
			return c.badRequest(bw, timer, errors.New("a request with a body"))
		}
		last := req.Close || n == MaxRequestsPerStream
		timer.Reset(c.writeTimeout)
		rsp := &response{w: bw, req: req, header: http.Header{}, close: last}
		h.ServeHTTP(rsp, req)
		if err := rsp.finish(); err != nil {
			if err := aborted(); err != nil {
				return err
			}
			return fmt.Errorf("dircache: answer %s: %w", req.URL.Path, err)
		}
		if last {
			return nil
		}
	}
}

// badRequest answers 400 and ends the stream; cause is what was wrong.
func (c *Cache) badRequest(bw *bufio.Writer, timer *time.Timer, cause error) error {
	timer.Reset(c.writeTimeout)
	rsp := &response{w: bw, header: http.Header{}, close: true}
	plain(rsp, http.StatusBadRequest, "bad request")
	if err := rsp.finish(); err != nil {
		return fmt.Errorf("%w: %v (and the 400: %v)", errBadRequest, cause, err)
	}
	c.log.Debug("dircache: bad request on a directory stream", "err", cause)
	return nil
}

// response is the http.ResponseWriter of one request on a stream. A
// response whose handler set Content-Length is written as it comes, so a
// large document is never copied; any other (the short error texts) is
// buffered, up to maxBufferedBody, to learn its length.
type response struct {
	w      *bufio.Writer
	req    *http.Request // nil for a 400 to a request that did not parse
	header http.Header
	close  bool // Connection: close, and the stream ends after it

	status    int   // 0 until WriteHeader
	length    int64 // the handler's Content-Length; -1: buffered
	written   int64
	body      bytes.Buffer // when buffered
	err       error        // the first write error, or a handler's overrun
	noBodyOut bool         // HEAD, 304 or 1xx/204: no body on the wire
}

func (r *response) Header() http.Header { return r.header }

func (r *response) WriteHeader(code int) {
	if r.status != 0 {
		return
	}
	if code < 200 || code > 999 {
		code = http.StatusInternalServerError // no informational answers here
	}
	r.status = code
	r.noBodyOut = code == http.StatusNotModified || code == http.StatusNoContent ||
		(r.req != nil && r.req.Method == http.MethodHead)
	r.length = -1
	if v := r.header.Get("Content-Length"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			r.err = fmt.Errorf("handler set Content-Length %q", v)
			return
		}
		r.length = n
		r.writeHead()
	}
}

func (r *response) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if r.err != nil {
		return 0, r.err
	}
	if r.noBodyOut {
		return len(p), nil
	}
	if r.length < 0 {
		if r.body.Len()+len(p) > maxBufferedBody {
			r.err = fmt.Errorf("response of over %d bytes without a Content-Length", maxBufferedBody)
			return 0, r.err
		}
		return r.body.Write(p)
	}
	if r.written+int64(len(p)) > r.length {
		r.err = fmt.Errorf("handler wrote more than its Content-Length %d", r.length)
		return 0, r.err
	}
	n, err := r.w.Write(p)
	r.written += int64(n)
	if err != nil {
		r.err = err
	}
	return n, err
}

// writeHead writes the status line and headers.
func (r *response) writeHead() {
	if r.close {
		r.header.Set("Connection", "close")
	}
	if _, err := fmt.Fprintf(r.w, "HTTP/1.1 %03d %s\r\n", r.status, http.StatusText(r.status)); err != nil {
		r.err = err
		return
	}
	if err := r.header.Write(r.w); err != nil {
		r.err = err
		return
	}
	if _, err := r.w.WriteString("\r\n"); err != nil {
		r.err = err
	}
}

// finish completes the response and flushes it to the stream.
func (r *response) finish() error {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if r.err != nil {
		return r.err
	}
	if r.length < 0 {
		if r.status != http.StatusNotModified {
			r.header.Set("Content-Length", strconv.Itoa(r.body.Len()))
		}
		r.writeHead()
		if r.err == nil && !r.noBodyOut {
			_, r.err = r.w.Write(r.body.Bytes())
		}
	} else if !r.noBodyOut && r.written != r.length {
		// The client would wait for bytes that never come.
		return fmt.Errorf("handler wrote %d bytes of its Content-Length %d", r.written, r.length)
	}
	if r.err != nil {
		return r.err
	}
	return r.w.Flush()
}
