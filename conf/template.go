package conf

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Template returns the commented config file that `veil config init --role
// ROLE` prints: every key with its default value and a comment saying what
// it does. Values come from the Default… constructors, so a template cannot
// drift from the defaults; comments come from templateDocs.
func Template(role string) (string, error) {
	def, ok := roleDefaults(role)
	if !ok {
		return "", fmt.Errorf("conf: unknown role %q (want seed, relay or client)", role)
	}
	docs := templateDocs[role]
	var b strings.Builder
	b.WriteString(comment(templateHeaders[role], ""))
	v := reflect.ValueOf(def)
	if err := writeFields(&b, v, "", docs, false); err != nil {
		return "", err
	}
	if err := writeFields(&b, v, "", docs, true); err != nil {
		return "", err
	}
	return b.String(), nil
}

func roleDefaults(role string) (any, bool) {
	switch role {
	case "seed":
		return DefaultSeed(), true
	case "relay":
		return DefaultRelay(), true
	case "client":
		return DefaultClient(), true
	}
	return nil, false
}

// writeFields writes the plain keys of v, or, with tables set, its arrays of
// tables, which TOML needs after every plain key.
func writeFields(b *strings.Builder, v reflect.Value, prefix string, docs map[string]string, tables bool) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f, fv := t.Field(i), v.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if err := writeFields(b, fv, prefix, docs, tables); err != nil {
				return err
			}
			continue
		}
		key := strings.Split(f.Tag.Get("toml"), ",")[0]
		if key == "" || key == "-" {
			continue
		}
		isTables := f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct
		if isTables != tables {
			continue
		}
		doc, ok := docs[prefix+key]
		if !ok {
			return fmt.Errorf("conf: internal error: no template comment for key %q", prefix+key)
		}
		b.WriteString("\n" + comment(doc, ""))
		if !isTables {
			fmt.Fprintf(b, "%s = %s\n", key, renderValue(fv, false))
			continue
		}
		elems, commented := fv, ""
		if fv.Len() == 0 {
			// No default entries: show the example, commented out.
			ex, ok := templateExamples[prefix+key]
			if !ok {
				return fmt.Errorf("conf: internal error: no template example for key %q", prefix+key)
			}
			elems, commented = reflect.ValueOf(ex), "# "
		}
		for j := 0; j < elems.Len(); j++ {
			fmt.Fprintf(b, "%s[[%s]]\n", commented, key)
			if err := writeTable(b, elems.Index(j), prefix+key+".", docs, commented); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeTable writes the keys of one table of an array, each with its comment.
func writeTable(b *strings.Builder, v reflect.Value, prefix string, docs map[string]string, commented string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		key := strings.Split(t.Field(i).Tag.Get("toml"), ",")[0]
		doc, ok := docs[prefix+key]
		if !ok {
			return fmt.Errorf("conf: internal error: no template comment for key %q", prefix+key)
		}
		b.WriteString(comment(doc, commented))
		fmt.Fprintf(b, "%s%s = %s\n", commented, key, renderValue(v.Field(i), true))
	}
	return nil
}

func comment(doc, prefix string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(doc), "\n") {
		b.WriteString(strings.TrimRight(prefix+"# "+line, " ") + "\n")
	}
	return b.String()
}

var textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()

// renderValue writes a default as TOML. Lists of more than one string go one
// element per line unless inline is set, so exit policies read like torrc.
func renderValue(v reflect.Value, inline bool) string {
	if v.Type().Implements(textMarshaler) {
		text, _ := v.Interface().(encoding.TextMarshaler).MarshalText()
		return tomlQuote(string(text))
	}
	switch v.Kind() {
	case reflect.String:
		return tomlQuote(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64, reflect.Int32:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Slice:
		elems := make([]string, v.Len())
		for i := range elems {
			elems[i] = renderValue(v.Index(i), true)
		}
		if inline || len(elems) < 2 {
			return "[" + strings.Join(elems, ", ") + "]"
		}
		return "[\n  " + strings.Join(elems, ",\n  ") + ",\n]"
	}
	panic(fmt.Sprintf("conf: internal error: no template form for %s", v.Type()))
}

// tomlQuote writes a TOML basic string. strconv.Quote is close but emits \x
// and \a escapes that TOML does not have.
func tomlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		case r == utf8.RuneError:
			b.WriteString(`\uFFFD`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// exampleLine returns "key = default" for a top-level key of role, for
// hints; "" when there is no such key.
func exampleLine(role, key string) string {
	def, ok := roleDefaults(role)
	if !ok || key == "" {
		return ""
	}
	v := reflect.ValueOf(def)
	if f, ok := fieldByTag(v, key); ok {
		if f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct {
			return ""
		}
		return key + " = " + renderValue(f, true)
	}
	return ""
}

func fieldByTag(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if fv, ok := fieldByTag(v.Field(i), key); ok {
				return fv, true
			}
			continue
		}
		if strings.Split(f.Tag.Get("toml"), ",")[0] == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}
