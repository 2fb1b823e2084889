package relay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"veil/conf"
	"veil/directory"
	"veil/onion"
	"veil/onion/keys"
	"veil/relay/client"
)

// drainingExit starts guard, middle and exit, each draining for wait once
// asked, and returns a circuit through the three, a stream on it to an
// echo server, the exit's directory entry and the relays' log.
func drainingExit(t *testing.T, wait time.Duration) (*testNetwork, *client.Circuit, io.ReadWriteCloser, directory.Entry, *logBuffer) {
	t.Helper()
	n := newTestNetwork(t, 1)
	var log logBuffer
	n.log = slog.New(slog.NewTextHandler(&log, nil))
	n.relayEdit = func(c *conf.Relay) { c.ShutdownWait = conf.Duration(wait) }
	want := map[keys.NodeID]bool{}
	for _, name := range []string{"guard", "middle", "exit"} {
		want[n.startRelay(name, name == "exit").ID()] = true
	}
	cl, v := testClient(t, n, want)
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	hops := hopsByName(t, n, v, "guard", "middle", "exit")
	c, err := cl.Build(ctx, hops)
	if err != nil {
		t.Fatal(err)
	}
	dst := echoTarget(t)
	s, err := c.Dial(ctx, onion.Begin{Addr: dst.Addr(), Port: dst.Port()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	echoRoundTrips(t, s, 3)
	return n, c, s, hops[2], &log
}

// waitDraining waits until a relay has logged the start of its drain.
func waitDraining(t *testing.T, log *logBuffer) {
	t.Helper()
	waitFor(t, func() bool { return strings.Contains(log.String(), "draining: ") }, "a drain")
}

// TestDrainCarriesStreamsRefusesNew (issue 16 item 4): a draining exit
// keeps carrying the stream it has, answers a new stream on the same
// circuit END(HIBERNATING) and a CREATE on a link opened before the drain
// DESTROY(HIBERNATING), and once its last circuit is gone Run returns,
// long before shutdown_wait.
func TestDrainCarriesStreamsRefusesNew(t *testing.T) {
	n, c, s, entry, log := drainingExit(t, 10*time.Minute)
	exit := n.relays["exit"]
	l, answers := dialBare(t, entry)

	exit.r.Drain()
	waitDraining(t, log)
	echoRoundTrips(t, s, 20)

	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	dst := echoTarget(t)
	_, err := c.Dial(ctx, onion.Begin{Addr: dst.Addr(), Port: dst.Port()})
	var end *client.EndError
	if !errors.As(err, &end) || end.Reason != onion.EndHibernating {
		t.Fatalf("a new stream on the draining exit: %v, want END HIBERNATING", err)
	}
	id := sendCreate(t, l, entry)
	if a := nextAnswer(t, answers); a.cmd != onion.CellDestroy || a.id != id || a.reason != onion.DestroyHibernating {
		t.Fatalf("a CREATE to the draining exit got %+v, want DESTROY(HIBERNATING)", a)
	}
	echoRoundTrips(t, s, 20)

	s.Close()
	c.Close()
	select {
	case <-exit.done:
	case <-time.After(hangTimeout):
		t.Fatalf("the exit still runs with no circuit left:\n%s", log)
	}
	for _, want := range []string{"draining: 1 circuits, 1 streams; up to 10m0s", `msg="drained: no circuit left"`} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("no %q in the log:\n%s", want, log)
		}
	}
	if strings.Contains(log.String(), "level=WARN") {
		t.Errorf("a drain logged a warning:\n%s", log)
	}
}

// TestDrainEndsAtShutdownWait: a stream that never ends holds a drain for
// shutdown_wait and no longer; the stream is then cut.
func TestDrainEndsAtShutdownWait(t *testing.T) {
	const wait = time.Second
	n, _, s, _, log := drainingExit(t, wait)
	exit := n.relays["exit"]
	start := time.Now()
	exit.r.Drain()
	select {
	case <-exit.done:
	case <-time.After(hangTimeout):
		t.Fatalf("the drain did not end at shutdown_wait:\n%s", log)
	}
	if d := time.Since(start); d < wait {
		t.Fatalf("the drain ended after %v, before shutdown_wait (%v), with a stream open", d, wait)
	}
	if !strings.Contains(log.String(), "drained: shutdown_wait (1s) is over; closing now") {
		t.Errorf("the log does not say shutdown_wait ended the drain:\n%s", log)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, s)
		ended <- err
	}()
	select {
	case err := <-ended:
		t.Logf("the stream the drain outlasted ended: %v", err)
	case <-time.After(hangTimeout):
		t.Fatal("the stream through the closed exit never ended")
	}
}

// TestDrainCutShort: ending Run's context (the second signal) ends a
// drain at once.
func TestDrainCutShort(t *testing.T) {
	n, _, _, _, log := drainingExit(t, 10*time.Minute)
	exit := n.relays["exit"]
	exit.r.Drain()
	waitDraining(t, log)
	exit.cancel()
	select {
	case <-exit.done:
	case <-time.After(hangTimeout):
		t.Fatalf("the drain went on after its context ended:\n%s", log)
	}
	if !strings.Contains(log.String(), "drain cut short by a second signal") {
		t.Errorf("the log does not say the drain was cut short:\n%s", log)
	}
}
