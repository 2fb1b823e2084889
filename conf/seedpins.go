package conf

import "fmt"

// checkSeedPins validates [[key]] tables of seed pins, as a client's
// [[seed]] or a directory cache's [[dir_cache_seed]]: each with a name, a
// directory URL and a node ID, no name or identity twice (a seed pinned
// twice would count twice toward the majority).
func checkSeedPins(p *problems, key string, pins []SeedPin) {
	names := map[string]bool{}
	ids := map[string]bool{}
	for i, s := range pins {
		k := fmt.Sprintf("%s[%d]", key, i)
		if err := checkNickname(s.Name); err != nil {
			err.Key = k + ".name"
			p.add(err)
		} else if names[s.Name] {
			p.add(keyError(k+".name", "give each seed its own name", "seed name %q is used twice", s.Name))
		}
		names[s.Name] = true
		p.add(checkDirURL(k+".dir_url", s.DirURL))
		if err := checkNodeID(k+".identity", s.Identity); err != nil {
			p.add(err)
		} else if ids[s.Identity] {
			p.add(keyError(k+".identity", "list each seed once", "identity %q is pinned twice", s.Identity))
		}
		ids[s.Identity] = true
	}
}
