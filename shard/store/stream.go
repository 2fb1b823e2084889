package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Storage messages travel over a stream to the storage relay (a relay
// message is at most 64 KiB, a shard up to 4 MiB), each framed as
//
//	Type (1) | Length (4) | Body (Length)
//
// with Length at most MaxPutLen. The client sends one request and reads
// its RESULT before the next, so no request ID is needed.
const frameHeadLen = 1 + 4

// WriteFrame writes one framed message.
func WriteFrame(w io.Writer, t MsgType, body []byte) error {
	if len(body) > MaxPutLen {
		return malformedf("frame: %d bytes, limit %d", len(body), MaxPutLen)
	}
	var head [frameHeadLen]byte
	head[0] = byte(t)
	binary.BigEndian.PutUint32(head[1:], uint32(len(body)))
	if _, err := w.Write(head[:]); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

// ReadFrame reads one framed message, refusing one over MaxPutLen before
// allocating for it (G9).
func ReadFrame(r io.Reader) (MsgType, []byte, error) {
	var head [frameHeadLen]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(head[1:])
	if n > MaxPutLen {
		return 0, nil, malformedf("frame: %d bytes, limit %d", n, MaxPutLen)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, fmt.Errorf("store: frame body: %w", err)
	}
	return MsgType(head[0]), body, nil
}

// Serve answers storage requests read from rw until it ends or ctx does:
// what a storage relay runs on each storage stream. lim, if not nil,
// limits the stream's request and byte rate.
func Serve(ctx context.Context, rw io.ReadWriter, st *Store, lim *Limiter) error {
	for ctx.Err() == nil {
		t, body, err := ReadFrame(rw)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		res := answer(st, lim, t, body)
		out, err := res.Marshal()
		if err != nil {
			return err
		}
		if err := WriteFrame(rw, MsgResult, out); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func answer(st *Store, lim *Limiter, t MsgType, body []byte) Result {
	if lim != nil && !lim.Allow(time.Now(), len(body)) {
		return Result{Status: StatusRateLimited}
	}
	switch t {
	case MsgPut:
		m, err := ParsePut(body)
		if err == nil {
			err = st.Put(m.ID, m.Data, time.Duration(m.TTL)*time.Second)
		}
		return Result{Status: StatusOf(err)}
	case MsgGet:
		m, err := ParseGet(body)
		if err != nil {
			return Result{Status: StatusOf(err)}
		}
		data, err := st.Get(m.ID)
		if err != nil {
			return Result{Status: StatusOf(err)}
		}
		return Result{Status: StatusOK, Data: data}
	case MsgHas:
		m, err := ParseHas(body)
		if err != nil {
			return Result{Status: StatusOf(err)}
		}
		if st.Has(m.ID) {
			return Result{Status: StatusOK}
		}
		return Result{Status: StatusNotFound}
	}
	return Result{Status: StatusBadRequest}
}

// Client speaks the storage messages over a stream to one storage relay.
type Client struct{ rw io.ReadWriter }

// NewClient wraps a stream that reaches a storage relay's store.
func NewClient(rw io.ReadWriter) *Client { return &Client{rw: rw} }

func (c *Client) call(t MsgType, body []byte) (Result, error) {
	if err := WriteFrame(c.rw, t, body); err != nil {
		return Result{}, err
	}
	rt, rb, err := ReadFrame(c.rw)
	if err != nil {
		return Result{}, err
	}
	if rt != MsgResult {
		return Result{}, malformedf("answer of type %v, want RESULT", rt)
	}
	r, err := ParseResult(rb)
	if err != nil {
		return Result{}, err
	}
	if r.Status != StatusOK {
		return r, r.Status.Err()
	}
	return r, nil
}

// Put stores data under id for ttl (0: the relay's default).
func (c *Client) Put(id [IDLen]byte, data []byte, ttl time.Duration) error {
	m := Put{ID: id, TTL: uint32(ttl / time.Second), Data: data}
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	_, err = c.call(MsgPut, b)
	return err
}

// Get fetches the shard id.
func (c *Client) Get(id [IDLen]byte) ([]byte, error) {
	m := Get{ID: id}
	b, _ := m.Marshal()
	r, err := c.call(MsgGet, b)
	return r.Data, err
}

// Has reports whether the relay holds id.
func (c *Client) Has(id [IDLen]byte) (bool, error) {
	m := Has{ID: id}
	b, _ := m.Marshal()
	_, err := c.call(MsgHas, b)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
