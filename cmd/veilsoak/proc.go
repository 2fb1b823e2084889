package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Sample is one look at a process. Goroutines is -1 when the process
// serves no /metrics to read it from.
type Sample struct {
	At         time.Time `json:"at"`
	Alive      bool      `json:"alive"`
	RSSBytes   int64     `json:"rss_bytes"`
	FDs        int       `json:"fds"`
	CloseWait  int       `json:"close_wait"` // its TCP sockets in CLOSE_WAIT
	Threads    int       `json:"threads"`
	Goroutines int       `json:"goroutines"`
}

// Proc is one process of the testnet that the soak watches.
type Proc struct {
	Name    string `json:"name"`
	PID     int    `json:"pid"`
	Metrics string `json:"metrics,omitempty"` // host:port of its /metrics
}

// metricsClient reads /metrics; it never goes through the proxy.
var metricsClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// sample reads p's /proc entries and, if it has one, its /metrics.
func sample(ctx context.Context, p Proc) Sample {
	s := Sample{At: time.Now(), Goroutines: -1}
	dir := fmt.Sprintf("/proc/%d", p.PID)
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return s
	}
	st := parseStatus(string(status))
	if st.zombie {
		return s
	}
	s.Alive, s.RSSBytes, s.Threads = true, st.rssBytes, st.threads
	inodes := socketInodes(dir + "/fd")
	s.FDs = inodes.fds
	for _, f := range []string{"/net/tcp", "/net/tcp6"} {
		if b, err := os.ReadFile(dir + f); err == nil {
			s.CloseWait += countCloseWait(string(b), inodes.sockets)
		}
	}
	if p.Metrics != "" {
		if g, err := goroutines(ctx, p.Metrics); err == nil {
			s.Goroutines = g
		}
	}
	return s
}

type status struct {
	rssBytes int64
	threads  int
	zombie   bool
}

// parseStatus reads VmRSS, Threads and State from /proc/PID/status.
func parseStatus(text string) status {
	var st status
	for line := range strings.Lines(text) {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "VmRSS":
			kb, _ := strconv.ParseInt(strings.TrimSuffix(val, " kB"), 10, 64)
			st.rssBytes = kb << 10
		case "Threads":
			st.threads, _ = strconv.Atoi(val)
		case "State":
			st.zombie = strings.HasPrefix(val, "Z") || strings.HasPrefix(val, "X")
		}
	}
	return st
}

type fdSet struct {
	fds     int
	sockets map[string]bool // inode numbers of its sockets
}

// socketInodes counts a process's open fds and collects the inodes of
// its sockets (links "socket:[INODE]").
func socketInodes(fdDir string) fdSet {
	set := fdSet{sockets: map[string]bool{}}
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return set
	}
	set.fds = len(ents)
	for _, e := range ents {
		link, err := os.Readlink(fdDir + "/" + e.Name())
		if err != nil {
			continue
		}
		if ino, ok := strings.CutPrefix(link, "socket:["); ok {
			set.sockets[strings.TrimSuffix(ino, "]")] = true
		}
	}
	return set
}

// tcpCloseWait is CLOSE_WAIT in /proc/net/tcp's st column (include/net/tcp_states.h).
const tcpCloseWait = "08"

// countCloseWait counts the sockets of /proc/net/tcp (or tcp6) text that
// are in CLOSE_WAIT and whose inode is in mine. The table is the whole
// network namespace's; the inodes make it one process's.
func countCloseWait(table string, mine map[string]bool) int {
	n := 0
	for line := range strings.Lines(table) {
		f := strings.Fields(line)
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
		if len(f) < 10 || f[0] == "sl" {
			continue
		}
		if f[3] == tcpCloseWait && mine[f[9]] {
			n++
		}
	}
	return n
}

// goroutines reads the go_goroutines gauge from http://addr/metrics.
func goroutines(ctx context.Context, addr string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return gauge(resp.Body, "go_goroutines")
}

// gauge finds an unlabelled metric's value in Prometheus text.
func gauge(r io.Reader, name string) (int, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f), err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

// parentPID reads the parent's PID from /proc/PID/stat.
func parentPID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatPPID(string(b))
}

// parseStatPPID takes the 4th field of /proc/PID/stat; the 2nd, the
// command name in parentheses, may itself hold spaces and parentheses.
func parseStatPPID(stat string) (int, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("malformed /proc stat %q", stat)
	}
	return strconv.Atoi(f[1])
}
