package conf

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"veil/conf/exitpolicy"
)

// What a relay's descriptor can carry (directory/SPEC.md §2.1). A relay
// whose config asks for more refuses to start rather than publish a cut
// descriptor; config check says so first, at the key's line. conf is a
// leaf package, so the limits are restated here, each with its section.
const (
	// maxPublishedRules is the descriptor's MaxExitRules (SPEC.md §2.2):
	// exitpolicy accepts up to 1024 rules in a config.
	maxPublishedRules = 256
	// maxFamily is the descriptor's MaxFamily.
	maxFamily = 16
)

// checkPublishable refuses what the descriptor cannot carry: more exit
// rules or family members than it has room for, or a contact line with
// characters it refuses (control, format and separator characters, which
// would not print safely on one line).
func (r *Relay) checkPublishable(p *problems) {
	if r.Exit {
		if pol, err := exitpolicy.Parse(r.ExitPolicy); err == nil && len(pol) > maxPublishedRules {
			p.add(keyError("exit_policy", fmt.Sprintf("a descriptor carries at most %d rules: merge some, e.g. with address ranges", maxPublishedRules),
				"%d rules", len(pol)))
		}
	}
	if len(r.Family) > maxFamily {
		p.add(keyError("family", fmt.Sprintf("list at most %d relays", maxFamily), "%d family members, more than a descriptor carries", len(r.Family)))
	}
	if !utf8.ValidString(r.Contact) {
		p.add(keyError("contact", "write it in UTF-8", "contact is not UTF-8"))
		return
	}
	if strings.ContainsAny(r.Contact, "\r\n") {
		return // validate reports the line break
	}
	for i, c := range r.Contact {
		if unicode.In(c, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
			p.add(keyError("contact", "use printable characters on one line", "contact has the unprintable character %U at byte %d", c, i))
			return
		}
	}
}
