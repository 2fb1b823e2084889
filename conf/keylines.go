package conf

import (
	"strconv"
	"strings"
)

// BurntSushi/toml v1.6.0 records each key's position while parsing but keeps
// it unexported: it shows only in the ParseError of a failed decode. So for
// unknown keys and for values that decode but fail validation, keyLines scans
// the source itself. The source has already parsed as TOML, which keeps the
// scan simple: it follows table headers, finds "key =" at the start of a
// line, and skips strings (multi-line ones too) and comments, so a value can
// never be mistaken for a key.

// keyLines maps dotted key paths to their 1-based line. Arrays of tables get
// 0-based indices, as in "seed[1].dir_url", like Error.Key.
type keyLines struct {
	lines []string
	paths []keyLine // in document order
}

type keyLine struct {
	path string
	line int
}

func scanKeyLines(src string) *keyLines {
	kl := &keyLines{lines: strings.Split(src, "\n")}
	table := ""
	count := map[string]int{} // [[name]] seen so far, for indices
	var inString string       // `"""` or `'''` while inside a multi-line string
	for i, line := range kl.lines {
		rest := line
		if inString == "" {
			trimmed := strings.TrimLeft(line, " \t")
			switch {
			case strings.HasPrefix(trimmed, "[["):
				if name, ok := parseKeyPath(trimmed[2:], "]]"); ok {
					table = name + "[" + strconv.Itoa(count[name]) + "]"
					count[name]++
					kl.add(table, i+1)
				}
				continue
			case strings.HasPrefix(trimmed, "["):
				if name, ok := parseKeyPath(trimmed[1:], "]"); ok {
					table = name
					kl.add(table, i+1)
				}
				continue
			}
			if key, ok := parseKeyPath(trimmed, "="); ok {
				if table != "" {
					key = table + "." + key
				}
				kl.add(key, i+1)
				rest = trimmed[strings.IndexByte(trimmed, '=')+1:]
			}
		}
		inString = skipStrings(rest, inString)
	}
	return kl
}

func (kl *keyLines) add(path string, line int) {
	kl.paths = append(kl.paths, keyLine{path, line})
}

// parseKeyPath reads a dotted key of bare or quoted parts up to end, e.g.
// `a."b c".d =`. The key part ending at end must come first on the line.
func parseKeyPath(s, end string) (string, bool) {
	var parts []string
	for {
		s = strings.TrimLeft(s, " \t")
		var part string
		switch {
		case strings.HasPrefix(s, `"`):
			j := strings.IndexByte(s[1:], '"')
			if j < 0 {
				return "", false
			}
			part, s = s[1:1+j], s[2+j:]
		case strings.HasPrefix(s, "'"):
			j := strings.IndexByte(s[1:], '\'')
			if j < 0 {
				return "", false
			}
			part, s = s[1:1+j], s[2+j:]
		default:
			j := 0
			for j < len(s) && isBareKeyChar(s[j]) {
				j++
			}
			if j == 0 {
				return "", false
			}
			part, s = s[:j], s[j:]
		}
		parts = append(parts, part)
		s = strings.TrimLeft(s, " \t")
		if strings.HasPrefix(s, end) {
			return strings.Join(parts, "."), true
		}
		if !strings.HasPrefix(s, ".") {
			return "", false
		}
		s = s[1:]
	}
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// skipStrings walks the rest of a line and returns the multi-line string
// delimiter still open at its end, or "".
func skipStrings(s, open string) string {
	for len(s) > 0 {
		if open != "" {
			j := strings.Index(s, open)
			if open == `"""` {
				j = indexUnescaped(s, open)
			}
			if j < 0 {
				return open
			}
			s, open = s[j+3:], ""
			continue
		}
		switch {
		case s[0] == '#':
			return ""
		case strings.HasPrefix(s, `"""`), strings.HasPrefix(s, "'''"):
			open, s = s[:3], s[3:]
		case s[0] == '"':
			j := indexUnescaped(s[1:], `"`)
			if j < 0 {
				return ""
			}
			s = s[j+2:]
		case s[0] == '\'':
			j := strings.IndexByte(s[1:], '\'')
			if j < 0 {
				return ""
			}
			s = s[j+2:]
		default:
			s = s[1:]
		}
	}
	return open
}

// indexUnescaped is strings.Index for a delimiter that a backslash can escape.
func indexUnescaped(s, delim string) int {
	for i := 0; i+len(delim) <= len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if strings.HasPrefix(s[i:], delim) {
			return i
		}
	}
	return -1
}

// line returns the line of key, or of the nearest enclosing key or table the
// source names ("seed[1].dir_url", then "seed[1]", then "seed"), or 0. A key
// without indices ("seed.nmae", as toml.Key prints it) matches its first
// occurrence in any table of an array.
func (kl *keyLines) line(key string) int {
	for key != "" {
		for _, p := range kl.paths {
			if p.path == key {
				return p.line
			}
		}
		for _, p := range kl.paths {
			if stripIndices(p.path) == key {
				return p.line
			}
		}
		// A quoted key may hold any of "[].", so a "]" need not close an
		// index ("\"a]\" = 1").
		switch open := strings.LastIndexByte(key, '['); {
		case strings.HasSuffix(key, "]") && open >= 0:
			key = key[:open]
		case strings.Contains(key, "."):
			key = key[:strings.LastIndexByte(key, '.')]
		default:
			return 0
		}
	}
	return 0
}

// elemLine finds the line of a list element written as a string, searching
// from the line of its key up to the next key; it falls back to keyLine.
func (kl *keyLines) elemLine(keyLine int, elem string) int {
	if keyLine <= 0 {
		return keyLine
	}
	next := len(kl.lines) + 1
	for _, p := range kl.paths {
		if p.line > keyLine && p.line < next {
			next = p.line
		}
	}
	for n := keyLine; n < next && n <= len(kl.lines); n++ {
		l := kl.lines[n-1]
		if n == keyLine {
			l = l[strings.IndexByte(l, '=')+1:]
		}
		if strings.Contains(l, `"`+elem+`"`) || strings.Contains(l, `'`+elem+`'`) {
			return n
		}
	}
	return keyLine
}

func stripIndices(path string) string {
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		if path[i] == '[' {
			for i < len(path) && path[i] != ']' {
				i++
			}
			continue
		}
		b.WriteByte(path[i])
	}
	return b.String()
}
