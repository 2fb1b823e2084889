package client

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"veil/relay/socks"
)

// isolationKey names the circuit a SOCKS client's streams share: its
// credentials, each length-prefixed, so that no two different
// username/password pairs give one key (with a separator, "a\x00" + "b"
// and "a" + "\x00b" would) and share a circuit they were meant not to.
func isolationKey(cred socks.Credentials) string {
	return strconv.Itoa(len(cred.Username)) + ":" + cred.Username + strconv.Itoa(len(cred.Password)) + ":" + cred.Password
}

// ErrSpecialName is a CONNECT to a name that no exit's DNS should ever see.
var ErrSpecialName = errors.New("client: special-use name")

// specialSuffixes are names for other networks or the local host
// (RFC 6761, RFC 6762, RFC 9476, ICANN's .internal): an exit's resolver
// cannot answer them, and asking it would tell the exit, and whoever runs
// its DNS, which onion service or local host a user tried to reach.
var specialSuffixes = []string{"onion", "local", "localhost", "internal"}

// checkName refuses a name under one of specialSuffixes, with an error
// that says why.
func checkName(host string) error {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	for _, s := range specialSuffixes {
		if h == s || strings.HasSuffix(h, "."+s) {
			return fmt.Errorf("%w: %q is a .%s name, which veil does not send to an exit", ErrSpecialName, host, s)
		}
	}
	return nil
}
