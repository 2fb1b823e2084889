package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"veil/directory"
	"veil/onion"
	"veil/relay/stream"
)

// maxDirResponse bounds what one directory response may take from a
// stream, headers included: the largest document and room for headers.
// dirclient caps the body itself; this keeps endless header lines from a
// hostile guard from growing memory before that (G9).
const maxDirResponse = directory.MaxConsensusLen + 64<<10

// dirAnswerTimeout bounds the wait for the guard's answer to a directory
// request: the one-hop circuit (when one is built), the stream and the
// response's headers; the body then has the request's whole deadline. A
// guard that hangs with its connections open would otherwise hold the
// client's view until the circuit's hung detection (hungAfter) closes the
// link, and the view is how the client learns that the guard is gone:
// past this the request fails, and dirclient asks the seeds. It is about
// when the client takes a circuit for suspect (silentAfter + pongTimeout),
// with room for a loaded machine, on which a late answer only costs a
// request to the seeds.
const dirAnswerTimeout = silentAfter + pongTimeout + time.Second

// DialDir opens a stream to the directory cache of the circuit's last hop
// (BEGIN_DIR, onion/SPEC.md §7.9), on which HTTP/1.1 requests for the
// seeds' documents go (directory/SPEC.md §8). A relay that is no cache
// ends it at once (an *EndError with NOROUTE).
func (c *Circuit) DialDir(ctx context.Context) (*stream.Stream, error) {
	return c.open(ctx, onion.RelayBeginDir, nil)
}

// DirTransport sends directory requests to the client's guard: an
// http.RoundTripper for dirclient.Options.DirCache. Each request goes on
// a BEGIN_DIR stream of its own over a one-hop circuit to the guard that
// path selection gives for the current view; the circuit is kept while it
// is usable and the guard stays the same, so a refresh costs no handshake.
// The guard learns only that its client refreshed its view: it already
// knows the client's address and carries all of its circuits.
type DirTransport struct {
	cl *Client

	mu   sync.Mutex // guards circ; held while it is built, so one is
	circ *Circuit   // the one-hop circuit to the guard, or nil
}

// DirTransport returns a transport to the guard's directory cache. Its
// circuit is the client's: Close ends it.
func (cl *Client) DirTransport() *DirTransport { return &DirTransport{cl: cl} }

// circuit returns a usable one-hop circuit to the current guard, building
// one when there is none or the guard changed.
func (t *DirTransport) circuit(ctx context.Context) (*Circuit, error) {
	v := t.cl.opts.View()
	if v == nil {
		return nil, errors.New("client: no directory view to choose a guard from")
	}
	g, err := t.cl.opts.Paths.Guard(v)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.circ; c != nil {
		if c.hops[0].Descriptor.NodeID() == g.Descriptor.NodeID() && t.cl.usable(c, v) {
			return c, nil
		}
		c.Close()
		t.circ = nil
	}
	c, err := t.cl.Build(ctx, []directory.Entry{g})
	if err != nil {
		return nil, err
	}
	t.circ = c
	return c, nil
}

// RoundTrip sends req on a new BEGIN_DIR stream to the guard and returns
// its answer; closing the body ends the stream. req's context bounds the
// whole exchange, the body's reading included.
func (t *DirTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	actx, cancel := context.WithTimeout(ctx, dirAnswerTimeout)
	defer cancel()
	c, err := t.circuit(actx)
	if err != nil {
		return nil, fmt.Errorf("client: directory circuit to the guard: %w", err)
	}
	guard := c.hops[0].Descriptor.Nickname
	s, err := c.DialDir(actx)
	if err != nil {
		t.drop(c, actx)
		return nil, fmt.Errorf("client: directory stream to guard %s: %w", guard, err)
	}
	// A guard that stops answering must not hold the fetch: a context
	// ending closes the stream, which ends any Read or Write on it; until
	// the headers are in, the shorter one.
	stop := context.AfterFunc(ctx, func() { s.CloseWith(onion.EndTimeout) })
	stopAnswer := context.AfterFunc(actx, func() { s.CloseWith(onion.EndTimeout) })
	end := func() {
		stop()
		s.Close()
		// What a directory refresh costs a client, for the README's
		// figure: the HTTP bytes both ways (each DATA cell is 4096
		// bytes on the wire however few it carries).
		t.cl.log.Debug("client: directory request through the guard", "guard", guard, "bytes", s.Moved())
	}
	if err := req.Write(s); err != nil {
		stopAnswer()
		end()
		return nil, fmt.Errorf("client: directory request to guard %s: %w", guard, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(io.LimitReader(s, maxDirResponse)), req)
	if !stopAnswer() && err == nil {
		// The answer's deadline passed as the headers came: the stream
		// is closed under the body.
		err = context.DeadlineExceeded
	}
	if err != nil {
		end()
		t.drop(c, actx)
		return nil, fmt.Errorf("client: directory answer from guard %s: %w", guard, err)
	}
	resp.Body = &dirBody{ReadCloser: resp.Body, end: sync.OnceFunc(end)}
	return resp, nil
}

// drop forgets c, the circuit a request failed on in time limited by
// actx, when the guard did not answer in time: the next request builds
// a new one, to the guard the view then gives.
func (t *DirTransport) drop(c *Circuit, actx context.Context) {
	if actx.Err() == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.circ == c {
		t.circ = nil
		c.Close()
	}
}

// dirBody is a response body whose Close also ends its stream.
type dirBody struct {
	io.ReadCloser
	end func()
}

func (b *dirBody) Close() error {
	err := b.ReadCloser.Close()
	b.end()
	return err
}
