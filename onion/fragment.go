package onion

// Fragmentation (SPEC.md §8). A relay message longer than one cell's data
// is split into consecutive cells with the same Cmd and StreamID, each but
// the last flagged MORE. Fragments are never interleaved with another
// message's, DROP included: a sender schedules padding between messages.
// A MORE fragment is never empty, so every cell of a multi-cell message
// makes progress.

// RelayMessage is a whole relay message: a command, the stream it belongs to
// (0 for the circuit) and its body (messages.go), at most MaxRelayMessageLen
// bytes.
type RelayMessage struct {
	Cmd      RelayCmd
	StreamID uint16
	Body     []byte
}

// Fragments splits m into cells of at most maxData data bytes each
// (production passes MaxRelayData). An empty body is one empty cell. The
// cells' Data alias m.Body.
func (m *RelayMessage) Fragments(maxData int) ([]RelayCell, error) {
	if maxData < 1 || maxData > MaxRelayData {
		return nil, malformedf("onion: fragment %v: cell data size %d outside 1..%d", m.Cmd, maxData, MaxRelayData)
	}
	if m.Cmd == relayReserved {
		return nil, malformedf("onion: fragment: command 0 is reserved")
	}
	if len(m.Body) > MaxRelayMessageLen {
		return nil, malformedf("onion: fragment %v: body is %d bytes, limit %d", m.Cmd, len(m.Body), MaxRelayMessageLen)
	}
	n := max(1, (len(m.Body)+maxData-1)/maxData)
	cells := make([]RelayCell, n)
	body := m.Body
	for i := range cells {
		k := min(len(body), maxData)
		cells[i] = RelayCell{Cmd: m.Cmd, StreamID: m.StreamID, Data: body[:k:k]}
		if i < n-1 {
			cells[i].Flags = RelayFlagMore
		}
		body = body[k:]
	}
	return cells, nil
}

// Reassembler joins fragments back into messages for one hop of one circuit
// in one direction. The zero value is ready to use. Any error is a protocol
// violation that must destroy the circuit; the Reassembler is reset.
type Reassembler struct {
	active   bool // a message is in progress in cmd, streamID, buf
	cmd      RelayCmd
	streamID uint16
	buf      []byte
}

// Add takes the next cell received. When it completes a message it returns
// it with complete set. For a one-cell message Body aliases c.Data (no copy:
// the common DATA case); for a multi-cell message Body is a fresh buffer
// owned by the caller and never aliases any cell.
func (r *Reassembler) Add(c *RelayCell) (msg RelayMessage, complete bool, err error) {
	if err := c.check("reassemble"); err != nil {
		r.Reset()
		return RelayMessage{}, false, err
	}
	if c.More() && len(c.Data) == 0 {
		r.Reset()
		return RelayMessage{}, false, violationf("onion: reassemble %v: empty fragment flagged MORE", c.Cmd)
	}
	if !r.active {
		if !c.More() {
			return RelayMessage{Cmd: c.Cmd, StreamID: c.StreamID, Body: c.Data}, true, nil
		}
		r.active, r.cmd, r.streamID = true, c.Cmd, c.StreamID
		r.buf = append(make([]byte, 0, 2*len(c.Data)), c.Data...)
		return RelayMessage{}, false, nil
	}
	if c.Cmd != r.cmd || c.StreamID != r.streamID {
		err := violationf("onion: reassemble: %v on stream %d interleaved with %v on stream %d",
			c.Cmd, c.StreamID, r.cmd, r.streamID)
		r.Reset()
		return RelayMessage{}, false, err
	}
	if len(r.buf)+len(c.Data) > MaxRelayMessageLen {
		err := violationf("onion: reassemble %v: message exceeds %d bytes", r.cmd, MaxRelayMessageLen)
		r.Reset()
		return RelayMessage{}, false, err
	}
	r.buf = append(r.buf, c.Data...)
	if c.More() {
		return RelayMessage{}, false, nil
	}
	msg = RelayMessage{Cmd: r.cmd, StreamID: r.streamID, Body: r.buf}
	r.Reset() // hands buf to the caller
	return msg, true, nil
}

// InProgress reports whether a multi-cell message is partly received.
func (r *Reassembler) InProgress() bool { return r.active }

// Reset drops any partial message.
func (r *Reassembler) Reset() { *r = Reassembler{} }
