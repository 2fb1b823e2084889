package main

import (
	"context"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestParseStatus(t *testing.T) {
	const text = "Name:\tveil\nState:\tS (sleeping)\nVmPeak:\t  900000 kB\nVmRSS:\t   23456 kB\nThreads:\t7\n"
	st := parseStatus(text)
	if st.rssBytes != 23456<<10 || st.threads != 7 || st.zombie {
		t.Fatalf("got %+v", st)
	}
	if !parseStatus("State:\tZ (zombie)\n").zombie {
		t.Fatal("a zombie is not seen as one")
	}
}

func TestCountCloseWait(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:1F90 08 00000000:00000000 00:00000000 00000000  1000        0 222 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:9C41 0100007F:1F90 08 00000000:00000000 00:00000000 00000000  1000        0 333 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:9C42 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 444 1 0000000000000000 20 4 30 10 -1
`
	// 333 is another process's; 444 is established.
	if n := countCloseWait(table, map[string]bool{"111": true, "222": true, "444": true}); n != 1 {
		t.Fatalf("counted %d sockets in CLOSE_WAIT, want 1", n)
	}
}

func TestParseStatPPID(t *testing.T) {
	for stat, want := range map[string]int{
		"1234 (veil) S 999 1234 1234 0 -1 4194560":          999,
		"1234 (a) b (c) d) R 42 1234 1234 0 -1 4194560 0 0": 42,
	} {
		if got, err := parseStatPPID(stat); err != nil || got != want {
			t.Errorf("%q: got %d, %v; want %d", stat, got, err, want)
		}
	}
	if _, err := parseStatPPID("1234 veil S"); err == nil {
		t.Error("a stat without the command's parentheses parsed")
	}
}

func TestGauge(t *testing.T) {
	text := "# HELP go_goroutines_x other\ngo_goroutines_x 1\n# TYPE go_goroutines gauge\ngo_goroutines 42\n"
	if g, err := gauge(strings.NewReader(text), "go_goroutines"); err != nil || g != 42 {
		t.Fatalf("got %d, %v", g, err)
	}
	if _, err := gauge(strings.NewReader("veil_relay_links 3\n"), "go_goroutines"); err == nil {
		t.Fatal("a missing gauge was found")
	}
}

// TestSampleSelf samples this process, with a listening socket and a
// connection whose peer has closed (CLOSE_WAIT on our side).
func TestSampleSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	peer.Close()
	s := sample(context.Background(), Proc{Name: "self", PID: os.Getpid()})
	if !s.Alive || s.FDs < 5 || s.RSSBytes < 1<<20 || s.Threads < 1 || s.Goroutines != -1 {
		t.Fatalf("implausible sample %+v", s)
	}
	if s.CloseWait != 1 {
		t.Fatalf("%d sockets in CLOSE_WAIT, want 1", s.CloseWait)
	}
	if s := sample(context.Background(), Proc{PID: 1 << 30}); s.Alive {
		t.Fatalf("a process that does not exist is alive: %+v", s)
	}
}
