package gossip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestMemberlistLinesHaveOneLevel (issue 16 item 10): a line memberlist
// logs reaches slog at the level its prefix names, with the prefix gone,
// so the line has one level key. Before, every memberlist line was a debug
// line with a second "level" attribute holding memberlist's own.
func TestMemberlistLinesHaveOneLevel(t *testing.T) {
	for _, tc := range []struct {
		line, level, msg string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:5000", "DEBUG", "Stream connection from=127.0.0.1:5000"},
		{"[INFO] memberlist: Marking n1 as failed, suspect timeout reached (0 peer confirmations)", "DEBUG", "Marking n1 as failed, suspect timeout reached (0 peer confirmations)"},
		{"[WARN] memberlist: Rejected node n2 (127.0.0.1): bad pointer", "WARN", "Rejected node n2 (127.0.0.1): bad pointer"},
		{"[ERR] memberlist: Failed to decode ping: EOF from=127.0.0.1:5000", "ERROR", "Failed to decode ping: EOF from=127.0.0.1:5000"},
		// Routine churn that failure detection answers by itself.
		{"[WARN] memberlist: Refuting a suspect message (from: n3)", "DEBUG", "Refuting a suspect message (from: n3)"},
		{"[ERR] memberlist: Failed fallback TCP ping: timeout 200ms: i/o timeout", "DEBUG", "Failed fallback TCP ping: timeout 200ms: i/o timeout"},
		{"[ERR] memberlist: Push/Pull with n3 failed: EOF", "DEBUG", "Push/Pull with n3 failed: EOF"},
		{"[WARN] memberlist: Was able to connect to n2 over TCP but UDP probes failed, network may be misconfigured", "INFO", "Was able to connect to n2 over TCP but UDP probes failed, network may be misconfigured"},
		{"no prefix at all", "DEBUG", "no prefix at all"},
		{"[FOO] memberlist: odd", "DEBUG", "[FOO] memberlist: odd"},
	} {
		var out bytes.Buffer
		l := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
		// memberlist writes through a *log.Logger with no prefix or flags.
		log.New(logWriter{l: l}, "", 0).Print(tc.line)
		line := strings.TrimSpace(out.String())
		if n := strings.Count(line, `"level":`); n != 1 {
			t.Errorf("%q: %d level keys: %s", tc.line, n, line)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("%q: %v: %s", tc.line, err, line)
		}
		if got["level"] != tc.level || got["msg"] != tc.msg || got["src"] != "memberlist" {
			t.Errorf("%q: got level %v msg %q src %v, want %s %q memberlist", tc.line, got["level"], got["msg"], got["src"], tc.level, tc.msg)
		}
	}
}

// multiError is memberlist's error type (hashicorp/go-multierror) in
// miniature: its text puts each error on a line of its own.
type multiError []error

func (m multiError) Error() string {
	s := fmt.Sprintf("%d errors occurred:", len(m))
	for _, e := range m {
		s += "\n\t* " + e.Error()
	}
	return s + "\n\n"
}

func (m multiError) WrappedErrors() []error { return m }
func (m multiError) Unwrap() []error        { return m }

// TestJoinErrorsOnOneLine (issue 16 item 10): a failed join is logged on
// one line, each seed's failure after the other, where memberlist's
// multierror and errors.Join would each start a new line.
func TestJoinErrorsOnOneLine(t *testing.T) {
	refused := errors.New("dial tcp 127.0.0.1:7946: connect: connection refused")
	err := joinErrors{multiError{fmt.Errorf("failed to join 127.0.0.1:7946: %w", refused)}, errors.New("timeout")}
	want := "failed to join 127.0.0.1:7946: dial tcp 127.0.0.1:7946: connect: connection refused; timeout"
	if err.Error() != want {
		t.Fatalf("join error %q, want %q", err.Error(), want)
	}
	if !errors.Is(err, refused) {
		t.Fatal("the joined error does not unwrap to its causes")
	}
}

// TestLeaveUnconfirmedIsNoError (issue 16 item 10): a leave whose
// broadcast memberlist cannot confirm in time (here: no time at all) is
// no error, so a daemon stopping with the rest of its network logs no
// "leaving the cluster" warning; the members still learn of it.
func TestLeaveUnconfirmedIsNoError(t *testing.T) {
	checkLeaks(t)
	nodes := cluster(t, 1)
	seed, a := nodes[0], nodes[1]
	if err := a.Leave(time.Nanosecond); err != nil {
		t.Fatalf("Leave: %v, want nil", err)
	}
	waitEvent(t, seed, EventLeave, a.Name(), converge)
}
