package conf

import (
	"reflect"
	"strings"
)

// Changed returns the TOML keys whose values differ between old and new,
// two configs of one role (*Relay, *Seed or *Client), in field order:
// what a reload (SIGHUP) has to apply or name as needing a restart.
// Embedded tables (Common, Gossip) are looked into.
func Changed(old, new any) []string {
	a, b := reflect.ValueOf(old), reflect.ValueOf(new)
	if a.Kind() == reflect.Pointer {
		a, b = a.Elem(), b.Elem()
	}
	if a.Type() != b.Type() {
		panic("conf: Changed on two different config types")
	}
	var keys []string
	changedFields(a, b, &keys)
	return keys
}

func changedFields(a, b reflect.Value, keys *[]string) {
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			changedFields(a.Field(i), b.Field(i), keys)
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" {
				name = f.Name
			}
			*keys = append(*keys, name)
		}
	}
}
