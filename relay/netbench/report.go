package netbench

import (
	"fmt"
	"io"
	"strings"
)

// Row is one line of the table.
type Row struct {
	Figure, Veil, Tor, TorNoKIST, Target, Met string
}

// Table returns the rows of the report: veil beside Tor's default and
// Tor without KIST, with the targets. Tor's columns come from
// this run when it ran Tor, else from results.md (the headers say which).
func (r *Results) Table() (header Row, rows []Row) {
	tor, nok := &TorResultsMD, &TorNoKISTResultsMD
	torWhere, nokWhere := "results.md, not this run", "results.md, not this run"
	if r.Tor != nil {
		tor, torWhere = r.Tor, "this run"
	}
	if r.TorNoKIST != nil {
		nok, nokWhere = r.TorNoKIST, "this run"
	}
	header = Row{"figure", "veil (this run)", "Tor default (" + torWhere + ")", "Tor without KIST (" + nokWhere + ")", "target", "met?"}

	add := func(fig, veil string, t, n float64, unit, target, met string) {
		rows = append(rows, Row{fig, veil, num(t, unit), num(n, unit), target, met})
	}
	yes := func(ok bool, have bool) string {
		switch {
		case !have:
			return "not measured"
		case ok:
			return "yes"
		default:
			return "**no**"
		}
	}

	add("start of a local network to first fetch", num(r.StartToFirstFetchS, "s"), tor.FirstFetchS, nok.FirstFetchS, "s",
		"< 5 s", yes(r.StartToFirstFetchS < 5, r.StartToFirstFetchS > 0))

	cb := r.CircuitBuildMS
	add("circuit build, 3 hops, median (ML-KEM on every hop)", num(cb.Median, "ms"), tor.CircuitMS, nok.CircuitMS, "ms",
		"< "+num(nok.CircuitMS, "ms")+" (Tor's best)", yes(cb.Median < nok.CircuitMS, cb.N > 0))
	add("circuit build, p95", num(cb.P95, "ms"), tor.CircuitP95MS, nok.CircuitP95MS, "ms", "", "")
	rows = append(rows, Row{"circuit builds that failed and were retried (all tests)",
		fmt.Sprintf("%d of %d", r.BuildFailures, r.BuildFailures+r.builds()), "", "", "", ""})

	fs := r.Fetch1KSocksMS
	add("1 KB fetch over a built circuit, median (through SOCKS: handshake, BEGIN, GET, whole body)", num(fs.Median, "ms"),
		tor.Fetch1KMS, nok.Fetch1KMS, "ms", "< "+num(nok.Fetch1KMS, "ms")+" (Tor's best)", yes(fs.Median < nok.Fetch1KMS, fs.N > 0))
	add("1 KB fetch, p95", num(fs.P95, "ms"), tor.Fetch1KP95MS, nok.Fetch1KP95MS, "ms", "", "")
	rows = append(rows,
		Row{"1 KB over a built circuit, client library: BEGIN to CONNECTED, median", num(r.StreamOpenMS.Median, "ms"), "", "", "", ""},
		Row{"1 KB, client library: request to first response byte, median (p95)",
			num(r.TTFB1KMS.Median, "ms") + " (" + num(r.TTFB1KMS.P95, "ms") + ")", "", "", "", ""},
		Row{"1 KB, client library: BEGIN to last byte, median (p95)",
			num(r.Fetch1KMS.Median, "ms") + " (" + num(r.Fetch1KMS.P95, "ms") + ")", "", "", "", ""})

	single := median(mapf(r.Single, func(t Transfer) float64 { return t.MBps }))
	want := 10 * tor.SingleMBps
	target := fmt.Sprintf("≥ 10× Tor = %.0f MB/s", want)
	ceilingMet := true
	if r.Ceiling.Measured {
		target += fmt.Sprintf(" and ≥ ½ ceiling = %.0f MB/s", r.Ceiling.MBps/2)
		ceilingMet = single >= r.Ceiling.MBps/2
	} else {
		target += " and ≥ ½ ceiling (ceiling not measured)"
	}
	add(fmt.Sprintf("single stream, 200 MiB through SOCKS, MB/s (median of %d)", len(r.Single)), num(single, "MB/s"),
		tor.SingleMBps, nok.SingleMBps, "MB/s", target, yes(single >= want && ceilingMet, len(r.Single) > 0))

	for _, n := range []int{8, 32} {
		bs := r.Concurrent[fmt.Sprintf("isolated_%d", n)]
		agg := median(mapf(bs, func(b Burst) float64 { return b.AggregateMBps }))
		t, k := tor.Isolated8MBps, nok.Isolated8MBps
		tgt, met := "", ""
		if n == 32 {
			t, k = tor.Isolated32MBps, nok.Isolated32MBps
			tgt = fmt.Sprintf("≥ 5× Tor = %.0f MB/s", 5*t)
			met = yes(agg >= 5*t, len(bs) > 0)
		}
		add(fmt.Sprintf("%d streams on isolated circuits, aggregate MB/s (median of %d)", n, len(bs)), num(agg, "MB/s"), t, k, "MB/s", tgt, met)
	}

	all := median(mapf(r.Single, func(t Transfer) float64 { return t.AllCPUMsPerMB }))
	relays := median(mapf(r.Single, func(t Transfer) float64 { return t.RelayCPUMsPerM }))
	add("CPU per MB moved, single stream: relays + proxy (Tor: all tor processes)", num(all, "ms/MB"), tor.CPUMsPerMB, nok.CPUMsPerMB, "ms/MB", "", "")
	rows = append(rows, Row{"CPU per MB moved: relays only", num(relays, "ms/MB"), "", "", "", ""})

	rows = append(rows, r.shareRows(tor, yes)...)

	if m := r.Memory; m != nil {
		fig := "relay memory per 1,000 idle circuits (RSS growth per relay on the path)"
		if m.Circuits != 1000 {
			fig += fmt.Sprintf(", scaled from %d circuits", m.Circuits)
		}
		rows = append(rows, Row{fig, fmt.Sprintf("%.0f kB (%.2f kB per circuit per relay; second half alone %.2f kB)", m.KBPer1000, m.KBPerCircuitHop, m.MarginalKBPerCircuitHop), "not measured", "not measured", "", ""})
	} else {
		rows = append(rows, Row{"relay memory per 1,000 idle circuits", "not measured", "not measured", "not measured", "", ""})
	}

	c := "not measured: " + r.Ceiling.Reason
	if r.Ceiling.Measured {
		c = fmt.Sprintf("%s (median of %d)", num(r.Ceiling.MBps, "MB/s"), len(r.Ceiling.Runs))
	}
	rows = append(rows, Row{"TLS-chain ceiling: 3 relays over TLS 1.3, no onion crypto (limits/netbench chain-tls)", c, "", "", "", ""})
	return header, rows
}

// WriteTable writes the table as markdown, with where Tor's figures came
// from underneath.
func (r *Results) WriteTable(w io.Writer) {
	h, rows := r.Table()
	line := func(x Row) {
		cells := []string{x.Figure, dash(x.Veil), dash(x.Tor), dash(x.TorNoKIST), dash(x.Target), dash(x.Met)}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	line(h)
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, x := range rows {
		line(x)
	}
	fmt.Fprintln(w)
	tor, nok := &TorResultsMD, &TorNoKISTResultsMD
	if r.Tor != nil {
		tor = r.Tor
	}
	if r.TorNoKIST != nil {
		nok = r.TorNoKIST
	}
	fmt.Fprintf(w, "Tor default: %s. Tor without KIST: %s.\n", tor.Source, nok.Source)
	if r.Quick {
		fmt.Fprintln(w, "QUICK RUN: tiny sizes, figures mean nothing.")
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}

func num(v float64, unit string) string {
	if v == 0 {
		return ""
	}
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f %s", v, unit)
	case v >= 10:
		return fmt.Sprintf("%.1f %s", v, unit)
	default:
		return fmt.Sprintf("%.2f %s", v, unit)
	}
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func mapf[T any](xs []T, f func(T) float64) []float64 {
	out := make([]float64, 0, len(xs))
	for _, x := range xs {
		out = append(out, f(x))
	}
	return out
}

// builds counts the circuits built successfully by the harness's own
// client (timed builds, the first, the 1 KB circuit, idle circuits).
func (r *Results) builds() int {
	n := r.CircuitBuildMS.N
	if r.FirstBuildMS > 0 {
		n++
	}
	if r.Fetch1KMS.N > 0 {
		n++
	}
	if r.Memory != nil {
		n += r.Memory.Circuits
	}
	return n
}

// shareRows are issue 5's rows: share and fetch of a file through the
// testnet beside a download from a Tor onion service, the closest thing
// Tor has to fetching a file anonymously from someone who shares it.
func (r *Results) shareRows(tor *TorFigures, yes func(ok, have bool) string) []Row {
	size := "100 MB"
	if len(r.ShareFetch) > 0 {
		size = fmt.Sprintf("%.0f MB", float64(r.ShareFetch[0].Bytes)/MB)
	}
	onionMBps, onionCPU := num(tor.OnionMBps, "MB/s"), num(tor.OnionCPUMsPerMB, "ms/MB")
	if tor.OnionMBps == 0 {
		// Tor ran this time but its onion test did not give a figure:
		// say so, and show the recorded one beside it.
		why := "failed this run"
		if tor.OnionError != "" {
			why += ": " + tor.OnionError
		}
		onionMBps = fmt.Sprintf("%s; results.md: %s", why, num(TorResultsMD.OnionMBps, "MB/s"))
		onionCPU = "results.md: " + num(TorResultsMD.OnionCPUMsPerMB, "ms/MB")
	}
	var shares, fetches []*FileOp
	exact := true
	for _, sf := range r.ShareFetch {
		if sf.Share != nil {
			shares = append(shares, sf.Share)
		}
		if sf.Fetch != nil {
			fetches = append(fetches, sf.Fetch)
			exact = exact && (sf.Fetch.MBps == 0 || sf.BitExact)
		}
	}
	target := fmt.Sprintf("≥ %d MB/s", ShareTargetMBps)
	// A share or fetch that failed did not meet the target.
	rate := func(ops []*FileOp) (cell, met string) {
		var ok []float64
		for _, o := range ops {
			if o.MBps > 0 {
				ok = append(ok, o.MBps)
			}
		}
		failed := len(ops) - len(ok)
		met = yes(median(ok) >= ShareTargetMBps && failed == 0, len(ops) > 0)
		switch {
		case len(ops) == 0:
			return "", met
		case len(ok) == 0:
			return "failed (see the errors below)", met
		}
		s := summarize(ok)
		cell = fmt.Sprintf("%s (median of %d", num(s.Median, "MB/s"), s.N)
		if s.N > 1 {
			cell += fmt.Sprintf("; %.1f-%.1f", s.Min, s.Max)
		}
		if failed > 0 {
			cell += fmt.Sprintf("; %d failed", failed)
		}
		return cell + ")", met
	}
	cpu := func(ops []*FileOp) string {
		var per, client, relays []float64
		for _, o := range ops {
			if o.MBps > 0 {
				per, client, relays = append(per, o.CPUMsPerMB), append(client, o.ClientCPUS), append(relays, o.RelayCPUS)
			}
		}
		if len(per) == 0 {
			return ""
		}
		return fmt.Sprintf("%s (medians: client %.2f s, relays %.2f s)", num(median(per), "ms/MB"), median(client), median(relays))
	}
	shareCell, shareMet := rate(shares)
	fetchCell, fetchMet := rate(fetches)
	if !exact {
		fetchMet = "**no** (not bit-exact)"
	}
	return []Row{
		{"share " + size + " with `veil share`: a process from start to link printed (encrypt, RS-code, store shards over circuits); Tor: 200 MiB download from an onion service",
			shareCell, onionMBps, "", target, shareMet},
		{"fetch " + size + " with `veil fetch`: a process from start to file written, SHA-256 checked against the shared file; Tor: the same onion download",
			fetchCell, onionMBps, "", target, fetchMet},
		{"CPU per MB, share: client process + all relays (Tor: all tor processes, onion download)", cpu(shares), onionCPU, "", "", ""},
		{"CPU per MB, fetch: client process + all relays (Tor: all tor processes, onion download)", cpu(fetches), onionCPU, "", "", ""},
	}
}
