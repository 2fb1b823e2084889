package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestLogsNameNoDestination (issue 16 item 10): with every process at
// debug, a client fetches a page and asks for a name no DNS knows; no log
// line of any process names either destination, nor the client's own
// port (relay/socks/SPEC.md: logs never name a destination or a client).
func TestLogsNameNoDestination(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "carried") }))
	defer web.Close()
	webAddr := netip.MustParseAddrPort(strings.TrimPrefix(web.URL, "http://"))
	const marker = "dest-marker-7f3a.test"

	n := newLocalNet(t)
	procs := []*proc{startProc(t, "seed", "--config", n.seedCfg)}
	for i, name := range []string{"alpha", "bravo", "charlie"} {
		cfg := n.relayConfig(name, i == 0)
		setConfigLine(t, cfg, "log_level", quote("debug"))
		procs = append(procs, startProc(t, "relay", "--config", cfg))
	}
	socks := freePort(t)
	setConfigLine(t, n.client, "socks_addr", quote(socks))
	setConfigLine(t, n.client, "local_testnet", "true")
	setConfigLine(t, n.client, "log_level", quote("debug"))
	procs = append(procs, startProc(t, "proxy", "--config", n.client))

	if err := fetchThrough(socks, webAddr); err != nil {
		t.Fatal(err)
	}
	// A name: resolved, and refused, at the exit.
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	var clientPorts []string
	if c, err := dialSOCKSName(ctx, socks, marker, 80); c != nil {
		_, port, _ := net.SplitHostPort(c.LocalAddr().String())
		clientPorts = append(clientPorts, ":"+port)
		c.Close()
		t.Logf("the name: %v", err)
	}
	time.Sleep(2 * time.Second) // let the last lines be written

	needles := append([]string{marker, fmt.Sprintf(":%d", webAddr.Port())}, clientPorts...)
	for _, p := range procs {
		log := p.stderr.String()
		for _, line := range strings.Split(log, "\n") {
			for _, needle := range needles {
				if strings.Contains(line, needle) {
					t.Errorf("%s logged %q: %s", p.cmd.Args[1], needle, line)
				}
			}
		}
	}
}

// dialSOCKSName opens a SOCKS5 CONNECT to a name through the proxy and
// returns the connection if the proxy accepted it.
func dialSOCKSName(ctx context.Context, socks, host string, port uint16) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", socks)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(hangTimeout))
	req := []byte{5, 1, 0}
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		c.Close()
		return nil, err
	}
	conn := append([]byte{5, 1, 0, 3, byte(len(host))}, host...)
	conn = append(conn, byte(port>>8), byte(port))
	if _, err := c.Write(conn); err != nil {
		c.Close()
		return nil, err
	}
	reply := make([]byte, 10)
	if _, err := io.ReadFull(c, reply); err != nil {
		c.Close()
		return nil, err
	}
	if reply[1] != 0 {
		return c, fmt.Errorf("socks reply %#x", reply[1])
	}
	return c, nil
}
