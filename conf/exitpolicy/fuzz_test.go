package exitpolicy

import "testing"

func FuzzParseRule(f *testing.F) {
	seeds := []string{
		// valid, one of each ADDRSPEC and PORTSPEC form
		"accept *:*",
		"reject *:25",
		"accept *4:80-443",
		"accept *6:443",
		"reject private:*",
		"accept 1.2.3.4:22",
		"accept 10.0.0.0/8:1-65535",
		"accept [2001:db8::1]:443",
		"accept [2001:db8::]/32:8000-8999",
		"  accept\t*:80-80  ", // odd spacing and a one-port range: canonicalised
		// invalid
		"",
		"acept *:80",                 // unknown action
		"accept *",                   // missing port
		"accept *:0",                 // port out of range
		"accept *:443-80",            // empty range
		"accept 10.1.0.0/8:*",        // host bits set
		"accept 2001:db8::1:443",     // IPv6 without brackets
		"accept [::ffff:1.2.3.4]:*",  // IPv4-mapped
		"accept [fe80::1%eth0]:*",    // zone
		"accept 1.2.3.4/33:*",        // prefix too long
		"accept *:80 reject *:*",     // two rules on one line
		"reject [2001:db8::]/:1-2-3", // garbage everywhere
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseRule(line)
		if err != nil {
			if _, ok := err.(*SyntaxError); !ok {
				t.Fatalf("ParseRule(%q) returned %T, want *SyntaxError", line, err)
			}
			return
		}
		canon := r.String()
		r2, err := ParseRule(canon)
		if err != nil {
			t.Fatalf("ParseRule(%q) ok, but its String %q does not parse: %v", line, canon, err)
		}
		if r2 != r {
			t.Fatalf("ParseRule(%q) = %+v, re-parsed String %q = %+v", line, r, canon, r2)
		}
		if r2.String() != canon {
			t.Fatalf("String not stable: %q then %q", canon, r2.String())
		}
	})
}
