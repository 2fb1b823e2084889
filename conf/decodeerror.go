package conf

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// decodeErrRE takes apart the plain errors toml returns for type mismatches:
// "toml: line 3 (last key \"or_addr\"): incompatible types: ...". Only
// ParseError carries its position as fields.
var decodeErrRE = regexp.MustCompile(`^toml: (?:line (\d+) )?(?:\(last key ("(?:[^"\\]|\\.)*")\): )?(.*)$`)

var typeMismatchRE = regexp.MustCompile(`^incompatible types: TOML value has type (.+); destination has type (.+)$`)

func decodeError(name, role string, err error) *Error {
	e := &Error{File: name, Err: err}
	var pe toml.ParseError
	if errors.As(err, &pe) {
		e.Line, e.Key, e.Msg = pe.Position.Line, pe.LastKey, pe.Message
	} else if m := decodeErrRE.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Key, _ = strconv.Unquote(m[2])
		e.Msg = m[3]
	} else {
		e.Msg = err.Error()
	}
	// toml's messages are capitalised sentences; ours are not.
	e.Msg = strings.TrimSuffix(e.Msg, ".")
	if e.Msg != "" && !strings.HasPrefix(e.Msg, "TOML") {
		e.Msg = strings.ToLower(e.Msg[:1]) + e.Msg[1:]
	}
	valueErr := strings.HasPrefix(e.Msg, "invalid ") // from Duration and Size
	if m := typeMismatchRE.FindStringSubmatch(e.Msg); m != nil {
		e.Msg = fmt.Sprintf("wrong type: got %s, want %s", tomlTypeName(m[1]), tomlTypeName(m[2]))
		valueErr = true
	}
	if ex := exampleLine(role, e.Key); ex != "" && valueErr {
		e.Hint = "write it like the default: " + ex
	}
	return e
}

// tomlTypeName turns the Go type names in toml's messages into TOML's words.
func tomlTypeName(goType string) string {
	switch {
	case goType == "int64", goType == "integer":
		return "integer"
	case goType == "float64", goType == "float":
		return "float"
	case goType == "bool", goType == "boolean":
		return "boolean"
	case goType == "string", strings.HasPrefix(goType, "primitive"):
		return "string"
	case goType == "time.Time":
		return "datetime"
	case strings.HasPrefix(goType, "[]map"):
		return "array of tables"
	case strings.HasPrefix(goType, "[]"), goType == "slice":
		return "array"
	case strings.HasPrefix(goType, "map"):
		return "table"
	}
	return goType
}
