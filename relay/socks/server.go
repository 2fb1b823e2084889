package socks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"veil/relay/internal/admit"
	"veil/relay/internal/splice"
)

const (
	// lingerTimeout bounds how long a refused connection is drained after
	// its error reply, so that closing with unread bytes does not send a
	// TCP RST that destroys the reply before the client reads it.
	lingerTimeout = time.Second
	// maxLingerBytes bounds what a refused client may make us read (G9).
	maxLingerBytes = 64 << 10
	// maxAcceptBackoff caps the pause after a failed Accept (EMFILE...).
	maxAcceptBackoff = time.Second
	// maxHandshakes bounds connections between accept and the end of
	// their request (G9): each costs a goroutine and a few hundred bytes.
	// Past it the oldest is closed to make room, never the newest: an
	// honest client finishes in milliseconds, so it is never the oldest,
	// and a flood of idle connections only evicts itself (SPEC.md §5).
	maxHandshakes = 256
	// maxHandshakesPerSource bounds one source address's share of
	// maxHandshakes, so a neighbour on the LAN cannot evict the handshakes
	// of everyone else; past it that source's own oldest is closed.
	// Browsers open at most 32 connections to one proxy at once (Chrome's
	// and Firefox's per-proxy limits), so this is four of them on one
	// host. Every client of a proxy on loopback shares 127.0.0.1, so this
	// cap never stands alone: eviction is what keeps them served.
	maxHandshakesPerSource = 128
)

// Connector opens the stream a CONNECT asks for; the proxy's circuit side
// implements it. Host in req is a name for the exit to resolve, never to
// be resolved locally (G6). Different cred must get different circuits
// (stream isolation).
//
// On success Connect returns the stream and err == nil; rep.Bind is the
// address reported to the client (an invalid Bind is sent as 0.0.0.0:0)
// and rep.Code is ignored. On failure it returns a non-nil err and
// rep.Code is the reply code to send (for a stream that ended, use
// onion.EndReason.SOCKSReply); ReplySucceeded there is sent as
// ReplyGeneralFailure. Connect must return once ctx is done.
//
// The stream's Close must unblock its Read and Write. If it has a
// CloseWrite() error method, a client's half-close is passed on.
type Connector interface {
	Connect(ctx context.Context, req Request, cred Credentials) (io.ReadWriteCloser, Reply, error)
}

// ConnectorFunc adapts a function to a Connector.
type ConnectorFunc func(ctx context.Context, req Request, cred Credentials) (io.ReadWriteCloser, Reply, error)

// Connect calls f.
func (f ConnectorFunc) Connect(ctx context.Context, req Request, cred Credentials) (io.ReadWriteCloser, Reply, error) {
	return f(ctx, req, cred)
}

// Options configure a Server. Start from DefaultOptions.
type Options struct {
	Connector Connector    // required
	Logger    *slog.Logger // nil: silent

	// HandshakeTimeout bounds greeting, authentication and request
	// together; a client that sends nothing is dropped after it.
	// 0 means the default. A flood of such clients is bounded by
	// eviction of the oldest (maxHandshakes), not by this deadline.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a relayed connection when no byte has moved in
	// either direction for this long. 0 means never.
	IdleTimeout time.Duration
	// HalfCloseLinger closes a relayed connection when, after one
	// direction has ended, the other has moved no byte for this long.
	// 0 means the default.
	HalfCloseLinger time.Duration
	// MaxConns bounds client connections past their request (connecting
	// or relaying); handshakes are bounded apart, by maxHandshakes. Past
	// it, the connection that has moved no byte for the longest is closed
	// to make room, so a pile of idle or leaked streams never locks a new
	// client out. 0 means the default.
	MaxConns int

	// AllowNoAuth and AllowUserPass say which methods are offered; at
	// least one must be set. When a client offers both, username/password
	// wins so that its credentials can isolate its streams.
	AllowNoAuth   bool
	AllowUserPass bool
}

// DefaultOptions returns the defaults, each with its reason. Set Connector
// before use.
func DefaultOptions() Options {
	return Options{
		// A local client finishes its handshake in milliseconds, one on
		// the LAN in a few round trips; five seconds forgives a loaded
		// machine or a swapped-out client and a lost segment or two (TCP
		// retransmits after 1 s, then 2 s), and frees a silent client's
		// goroutine soon. Eviction, not this, is what stops a flood.
		HandshakeTimeout: 5 * time.Second,
		// Off: an interactive session (ssh) may stay quiet for hours and
		// Tor does not cut idle streams either; MaxConns bounds the cost.
		IdleTimeout: 0,
		// As long as the exit lingers on its side of a stream.
		HalfCloseLinger: splice.DefaultLinger,
		// Each connection costs two goroutines and copy buffers: 32 KiB
		// towards the stream, and towards the client 32 KiB, or with
		// veil's streams up to 64 KiB while data flows; so 1024 caps a
		// flood at about 100 MiB. A browser keeps far fewer open (32 per
		// proxy), so at the bound the one evicted, idle the longest, is
		// almost surely abandoned.
		MaxConns: 1024,
		// Both, as Tor does: curl and browsers use no-auth, and
		// username/password is how a client asks for isolation.
		AllowNoAuth:   true,
		AllowUserPass: true,
	}
}

// Server is a SOCKS5 server. Its Serve method runs once.
type Server struct {
	opts Options
	log  *slog.Logger
	wg   sync.WaitGroup // every connection's goroutine

	// handshakes holds connections before the end of their request. It
	// has its own lock, taken only under mu.
	handshakes *admit.Table

	mu      sync.Mutex         // guards the following fields, and every conn's inStreams
	streams map[*conn]struct{} // past the request, at most MaxConns
	closed  bool               // Serve is stopping: refuse new connections
	served  bool               // Serve has been called
}

// NewServer checks opts, fills in defaults for zero values and returns a
// Server.
func NewServer(opts Options) (*Server, error) {
	def := DefaultOptions()
	switch {
	case opts.Connector == nil:
		return nil, errors.New("socks: new server: no connector")
	case !opts.AllowNoAuth && !opts.AllowUserPass:
		return nil, errors.New("socks: new server: no authentication method allowed")
	case opts.HandshakeTimeout < 0 || opts.IdleTimeout < 0 || opts.HalfCloseLinger < 0 || opts.MaxConns < 0:
		return nil, errors.New("socks: new server: negative timeout or limit")
	}
	if opts.HalfCloseLinger == 0 {
		opts.HalfCloseLinger = def.HalfCloseLinger
	}
	if opts.HandshakeTimeout == 0 {
		opts.HandshakeTimeout = def.HandshakeTimeout
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = def.MaxConns
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: opts, log: log, handshakes: admit.New(maxHandshakes, maxHandshakesPerSource),
		streams: map[*conn]struct{}{}}, nil
}

// Serve accepts connections on ln until ctx ends, then stops in this
// order: it closes ln, closes every client connection (whose handlers then
// close their streams, and whose Connect calls see ctx done), and waits
// for every connection goroutine. It returns nil after ctx ends, or the
// error that stopped Accept otherwise (after the same cleanup).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.served {
		s.mu.Unlock()
		return errors.New("socks: serve: already called")
	}
	s.served = true
	s.mu.Unlock()

	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	err := s.acceptLoop(ctx, ln)
	ln.Close()
	s.mu.Lock()
	s.closed = true
	s.handshakes.CloseAll()
	for c := range s.streams {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *Server) acceptLoop(ctx context.Context, ln net.Listener) error {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("socks: accept: %w", err)
			}
			// Out of file descriptors or the like: wait and retry, as
			// net/http does, rather than spin or give up.
			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			s.log.Warn("socks accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			continue
		}
		backoff = 0
		// track never waits on a peer: at a limit it closes another
		// connection, which only wakes that connection's goroutine.
		sc := s.track(c)
		if sc == nil {
			c.Close()
			continue
		}
		s.wg.Go(func() {
			defer s.untrack(sc)
			defer sc.Close()
			s.handle(ctx, sc)
		})
	}
}

// handle runs one client connection from greeting to the end of the relay.
// Destinations are never logged: a proxy's log must not become a record
// of where its users went.
func (s *Server) handle(ctx context.Context, c *conn) {
	c.SetDeadline(time.Now().Add(s.opts.HandshakeTimeout))
	cred, ok := s.negotiate(c)
	if !ok {
		return
	}
	req, err := ReadRequest(c)
	if err != nil {
		s.log.Debug("socks request refused", "err", err)
		var pe *ParseError
		if errors.As(err, &pe) && pe.Kind != ErrVersion {
			s.refuse(c, MarshalReply(Reply{Code: pe.Reply()}))
		}
		return
	}
	if req.Cmd != CmdConnect {
		s.log.Debug("socks command not supported", "cmd", req.Cmd)
		s.refuse(c, MarshalReply(Reply{Code: ReplyCommandNotSupported}))
		return
	}
	if !s.promote(c) {
		return // evicted, or the server is stopping
	}
	// The Connector bounds its own work (circuit steps have timeouts);
	// the client's deadline applies again to writing the reply.
	c.SetDeadline(time.Time{})
	stream, rep, err := s.opts.Connector.Connect(ctx, req, cred)
	if err != nil || stream == nil {
		if stream != nil {
			stream.Close()
		}
		code := rep.Code
		if code == ReplySucceeded {
			code = ReplyGeneralFailure
		}
		s.log.Debug("socks connect failed", "reply", code, "err", err)
		c.SetDeadline(time.Now().Add(s.opts.HandshakeTimeout))
		s.refuse(c, MarshalReply(Reply{Code: code}))
		return
	}
	defer stream.Close()
	c.SetWriteDeadline(time.Now().Add(s.opts.HandshakeTimeout))
	if _, err := c.Write(MarshalReply(Reply{Code: ReplySucceeded, Bind: rep.Bind})); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	s.relay(c, stream)
}

// negotiate reads the greeting, chooses a method and runs its
// subnegotiation. It reports false when the connection is done.
func (s *Server) negotiate(c net.Conn) (Credentials, bool) {
	g, err := ReadGreeting(c)
	if err != nil {
		s.log.Debug("socks greeting refused", "err", err)
		return Credentials{}, false
	}
	var method byte = MethodNoAcceptable
	switch {
	case s.opts.AllowUserPass && g.Offers(MethodUserPass):
		method = MethodUserPass
	case s.opts.AllowNoAuth && g.Offers(MethodNoAuth):
		method = MethodNoAuth
	}
	if method == MethodNoAcceptable {
		s.log.Debug("socks no acceptable method", "offered", g.Methods)
		s.refuse(c, MarshalMethodSelection(MethodNoAcceptable))
		return Credentials{}, false
	}
	if _, err := c.Write(MarshalMethodSelection(method)); err != nil {
		return Credentials{}, false
	}
	if method == MethodNoAuth {
		return Credentials{}, true
	}
	cred, err := ReadUserPass(c)
	if err != nil {
		s.log.Debug("socks username/password refused", "err", err)
		var pe *ParseError
		if errors.As(err, &pe) {
			s.refuse(c, MarshalUserPassStatus(UserPassFailure))
		}
		return Credentials{}, false
	}
	// Any credentials are accepted: they select a circuit, not a user.
	if _, err := c.Write(MarshalUserPassStatus(UserPassSuccess)); err != nil {
		return Credentials{}, false
	}
	return cred, true
}

// refuse writes a final reply and drains the client for a moment: closing
// a socket with unread input sends an RST, which can destroy the reply
// before the client reads it. The caller closes c.
func (s *Server) refuse(c net.Conn, reply []byte) {
	if _, err := c.Write(reply); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.Copy(io.Discard, io.LimitReader(c, maxLingerBytes))
}

// relay copies bytes both ways until both directions end (splice.Run): a
// client's EOF is passed on as a half-close where the stream has
// CloseWrite, the stream's end likewise to the client, and once either
// direction is done the other gets HalfCloseLinger to finish, so a client
// that closes while the server keeps its connection open releases both.
func (s *Server) relay(c *conn, stream io.ReadWriteCloser) {
	var client net.Conn = c
	if as, ok := stream.(activeStream); ok {
		// The stream keeps the connection's activity from here on, and
		// the bare socket lets its WriteTo write to it directly.
		c.stream.Store(&as)
		client = c.Conn
	}
	err := splice.Run(client, stream, splice.Options{Idle: s.opts.IdleTimeout, Linger: s.opts.HalfCloseLinger})
	if errors.Is(err, splice.ErrIdle) {
		s.log.Debug("socks connection idle, closed")
	}
}
