package procmetrics

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// sampleLine is a sample of the text format as veil writes it: a metric
// name, optional labels of quoted values, and an unsigned integer.
var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})?) ([0-9]+)$`)

// Parse checks that text is what Metric and Write produce, every line a
// "# HELP name …", a "# TYPE name gauge|counter" or a sample
// "name{labels} value", and returns the samples by name, labels included
// as written. Tests of every /metrics use it.
func Parse(text string) (map[string]uint64, error) {
	samples := map[string]uint64{}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			if name, help, _ := strings.Cut(rest, " "); name == "" || help == "" {
				return nil, fmt.Errorf("procmetrics: line %d %q: HELP without a name and text", i+1, line)
			}
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if _, kind, _ := strings.Cut(rest, " "); kind != "gauge" && kind != "counter" {
				return nil, fmt.Errorf("procmetrics: line %d %q: TYPE is not gauge or counter", i+1, line)
			}
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("procmetrics: line %d %q: not a HELP, TYPE or sample line", i+1, line)
		}
		v, err := strconv.ParseUint(m[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("procmetrics: line %d %q: %w", i+1, line, err)
		}
		if _, dup := samples[m[1]]; dup {
			return nil, fmt.Errorf("procmetrics: line %d %q: sample repeated", i+1, line)
		}
		samples[m[1]] = v
	}
	return samples, nil
}
