package conf

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// portZero says whether an address field accepts port 0. Only fields whose
// comment says so do: there 0 means "bind a free port and log it". Addresses
// that other nodes must be told in advance (seed gossip and directory
// addresses) never accept it.
type portZero bool

const (
	fixedPort  portZero = false
	freePortOK portZero = true
)

// checkAddr validates a "host:port" string.
func checkAddr(key, addr string, zero portZero) *Error {
	hint := `write host:port, e.g. "127.0.0.1:9001", "0.0.0.0:9001" or "[::1]:9001"`
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return keyError(key, hint, "malformed address %q: %s", addr, splitErrText(err))
	}
	if host == "" {
		return keyError(key, hint, "address %q has no host", addr)
	}
	if !validHost(host) {
		return keyError(key, hint, "address %q: bad host %q", addr, host)
	}
	n, err := strconv.Atoi(port)
	min := 1
	if zero {
		min = 0
	}
	if err != nil || n < min || n > 65535 || strconv.Itoa(n) != port {
		return keyError(key, fmt.Sprintf("ports are %d to 65535", min), "address %q: port %q out of range", addr, port)
	}
	return nil
}

// splitErrText drops net's "address X:" prefix, which repeats what we print.
func splitErrText(err error) string {
	if ae, ok := err.(*net.AddrError); ok {
		return ae.Err
	}
	return err.Error()
}

// validHost accepts an IP address (IPv6 zones included) or a DNS name.
func validHost(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if len(host) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// checkAddrs validates every element of an address list.
func checkAddrs(p *problems, key string, addrs []string, zero portZero) {
	for i, a := range addrs {
		if err := checkAddr(fmt.Sprintf("%s[%d]", key, i), a, zero); err != nil {
			err.elem = a
			p.add(err)
		}
	}
}

// maxNickname matches Tor's limit, so nicknames fit the same displays.
const maxNickname = 19

func checkNickname(nick string) *Error {
	hint := "use 1 to 19 letters and digits, e.g. MyRelay1"
	if nick == "" || len(nick) > maxNickname {
		return keyError("nickname", hint, "nickname %q must be 1 to %d characters", nick, maxNickname)
	}
	for _, c := range nick {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return keyError("nickname", hint, "nickname %q has %q: only A-Z, a-z and 0-9 are allowed", nick, c)
		}
	}
	return nil
}

// nodeIDLen is the length of a node ID: an Ed25519 public key (32 bytes) in
// unpadded lowercase base32 is 52 characters.
const nodeIDLen = 52

func checkNodeID(key, id string) *Error {
	hint := "copy the 52-character node ID (a-z, 2-7) the node prints at start"
	if len(id) != nodeIDLen {
		return keyError(key, hint, "node ID %q has %d characters, want %d", id, len(id), nodeIDLen)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return keyError(key, hint, "node ID %q has %q: only a-z and 2-7 are allowed", id, c)
		}
	}
	return nil
}

// checkNodeIDs validates every element of a node ID list.
func checkNodeIDs(p *problems, key string, ids []string) {
	for i, id := range ids {
		if err := checkNodeID(fmt.Sprintf("%s[%d]", key, i), id); err != nil {
			err.elem = id
			p.add(err)
		}
	}
}

// checkDirURL validates a seed's directory URL: http or https, a host, an
// optional port and nothing else.
func checkDirURL(key, s string) *Error {
	hint := `write the seed's directory address, e.g. "http://127.0.0.1:7080"`
	u, err := url.Parse(s)
	if err != nil {
		return keyError(key, hint, "malformed directory URL %q", s)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return keyError(key, hint, "directory URL %q must start with http:// or https://", s)
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return keyError(key, hint, "directory URL %q must be scheme://host:port and nothing more", s)
	}
	if !validHost(u.Hostname()) {
		return keyError(key, hint, "directory URL %q: bad host %q", s, u.Hostname())
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return keyError(key, "ports are 1 to 65535", "directory URL %q: port %q out of range", s, p)
		}
	}
	return nil
}

func checkPositive(key string, d Duration) *Error {
	if d <= 0 {
		return keyError(key, `write a positive duration, e.g. "90s", "10m" or "24h"`, "duration %s must be positive", d)
	}
	return nil
}
