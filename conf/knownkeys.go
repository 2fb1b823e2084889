package conf

import (
	"reflect"
	"strings"
)

// knownKeys lists the dotted keys of a config struct: embedded structs add
// their keys at the same level, slices of structs (arrays of tables) add
// "name" and "name.field".
func knownKeys(t reflect.Type, prefix string) map[string]bool {
	known := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k := range knownKeys(f.Type, prefix) {
				known[k] = true
			}
			continue
		}
		tag := strings.Split(f.Tag.Get("toml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		known[prefix+tag] = true
		if f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct {
			for k := range knownKeys(f.Type.Elem(), prefix+tag+".") {
				known[k] = true
			}
		}
	}
	return known
}

// closestKey suggests the known key nearest to a misspelt one, if one is near.
func closestKey(key string, known map[string]bool) string {
	best, bestDist := "", len(key)/3+2
	for k := range known {
		if strings.EqualFold(k, key) {
			return k
		}
		if d := editDistance(key, k); d < bestDist || d == bestDist && k < best {
			best, bestDist = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
