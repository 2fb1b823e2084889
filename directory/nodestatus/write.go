package nodestatus

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"veil/onion/keys"
)

// Write prints r for a person, or as one JSON object with asJSON.
func (r Report) Write(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	id, _ := keys.ParseNodeID(r.Node)
	fmt.Fprintf(tw, "%s %s (%s)\n", r.Role, id.Short(), r.Node)
	fmt.Fprintf(tw, "consensus: %s", r.State)
	if r.ValidAfter != "" {
		fmt.Fprintf(tw, ", valid after %s", r.ValidAfter)
	}
	fmt.Fprintln(tw)
	switch {
	case r.Listed:
		fmt.Fprintf(tw, "  listed: yes, flags %s, measured %s\n", flagText(r.Flags), rate(r.Measured))
	case r.Role == "seed":
		fmt.Fprintf(tw, "  listed: a seed signs the consensus and is not listed in it\n")
	default:
		fmt.Fprintf(tw, "  listed: no\n")
	}
	fmt.Fprintf(tw, "\nseeds:\n  NAME\tANSWERED\tCOUNTED\tLISTED\tREACHABLE\tMEASURED\tFLAGS\n")
	for _, s := range r.Seeds {
		answered := "no"
		switch {
		case s.Answered:
			answered = "yes"
		case s.HasDoc:
			answered = "no (cached)"
		}
		listed, reachable, measured, flags := "-", "-", "-", "-"
		if s.HasDoc && r.Role != "seed" {
			listed, reachable = yesNo(s.Listed), yesNo(s.Reachable)
		}
		if s.Listed {
			measured, flags = rate(s.Measured), flagText(s.Flags)
		}
		counted := yesNo(s.Counted)
		if s.Counted && !s.Answered {
			counted = "cached"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, answered, counted, listed, reachable, measured, flags)
	}
	tw.Flush()
	fmt.Fprintln(tw)
	if r.Running == nil {
		fmt.Fprintf(tw, "running: unknown (%s)\n", r.RunningErr)
		return tw.Flush()
	}
	m := r.Running
	fmt.Fprintf(tw, "running: up %s, %d circuits, %d streams, %s in, %s out since start (metrics %s)\n",
		m.Uptime.Round(time.Second), m.Circuits, m.Streams, size(m.BytesIn), size(m.BytesOut), m.MetricsAddr)
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func flagText(f []string) string {
	if len(f) == 0 {
		return "none"
	}
	return strings.Join(f, " ")
}

func rate(b uint64) string {
	if b == 0 {
		return "not measured"
	}
	return fmt.Sprintf("%.1f MB/s", float64(b)/1e6)
}

func size(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
