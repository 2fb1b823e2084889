package procmetrics

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestWrite: the gauges a soak reads for leaks, under Prometheus's usual
// names, with sane values.
func TestWrite(t *testing.T) {
	var b bytes.Buffer
	Write(&b)
	got, err := Parse(b.String())
	if err != nil {
		t.Fatalf("%v in:\n%s", err, b.String())
	}
	if got["go_goroutines"] < 1 {
		t.Fatalf("go_goroutines = %d in:\n%s", got["go_goroutines"], b.String())
	}
	if runtime.GOOS == "linux" && (got["process_open_fds"] < 3 || got["process_resident_memory_bytes"] < 1<<20) {
		t.Fatalf("implausible process gauges:\n%s", b.String())
	}
}

func TestParse(t *testing.T) {
	good := "# HELP a_b An a.\n# TYPE a_b counter\na_b 3\nc{reason=\"X\",k=\"a\\\"b\"} 0\n"
	got, err := Parse(good)
	if err != nil || got["a_b"] != 3 || len(got) != 2 {
		t.Fatalf("Parse(%q) = %v, %v", good, got, err)
	}
	for _, bad := range []string{
		"a 1.5\n", "a -1\n", "a\n", "a  1\n", "# TYPE a histogram\n", "# HELP a\n",
		"a{b} 1\n", "a{b=\"c} 1\n", "# comment\n", "\n", "a 1\na 2\n",
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

// TestServe: /metrics answers with what write writes, and Serve returns,
// its listener closed, when ctx ends.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(ctx, ln, func(w io.Writer) {
			Metric(w, "veil_test_things", "gauge", "Things.", 7)
			Write(w)
		}, nil)
	}()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %v %s %v", resp.Status, resp.Header.Get("Content-Type"), err)
	}
	got, err := Parse(string(body))
	if err != nil || got["veil_test_things"] != 7 || got["go_goroutines"] < 1 {
		t.Fatalf("Parse = %v, %v in:\n%s", got, err, body)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return after its context ended")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the listener still accepts after Serve returned")
	}
}
