// Package metricstest reads a daemon's /metrics the way Prometheus would,
// for tests: it parses the page with the library's own parser, runs the
// library's lint over it, and refuses any label value that looks like an
// address or an ID. Only tests import it, so the parser and the lint stay
// out of the veil binary.
package metricstest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Get fetches http://addr/metrics and returns Check's samples, failing t
// on any error or problem.
func Get(t testing.TB, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s, %v", resp.Status, err)
	}
	got, err := Check(body)
	if err != nil {
		t.Fatalf("%v in:\n%s", err, body)
	}
	return got
}

// Gather renders what g gathers in the text format, as /metrics would
// serve it, and returns Check's samples, failing t on any problem.
func Gather(t testing.TB, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encode %s: %v", mf.GetName(), err)
		}
	}
	got, err := Check(b.Bytes())
	if err != nil {
		t.Fatalf("%v in:\n%s", err, b.String())
	}
	return got
}

// Check parses a /metrics page in the text format and returns its samples
// by name with labels as Prometheus writes them, `name{k="v",...}` in the
// page's label order; a histogram gives its _bucket, _sum and _count
// samples. It fails when the page does not parse, when promlint finds a
// problem, or when a label value looks like an address or an ID
// (LooksIdentifying).
func Check(page []byte) (map[string]float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(page))
	if err != nil {
		return nil, fmt.Errorf("metricstest: parse: %w", err)
	}
	problems, err := promlint.New(bytes.NewReader(page)).Lint()
	if err != nil {
		return nil, fmt.Errorf("metricstest: lint: %w", err)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("metricstest: lint: %v", problems)
	}
	out := map[string]float64{}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			if err := checkLabels(name, m.GetLabel()); err != nil {
				return nil, err
			}
			for key, v := range samples(name, mf.GetType(), m) {
				out[key] = v
			}
		}
	}
	return out, nil
}

// samples flattens one metric into its sample lines.
func samples(name string, kind dto.MetricType, m *dto.Metric) map[string]float64 {
	labels := m.GetLabel()
	out := map[string]float64{}
	switch kind {
	case dto.MetricType_COUNTER:
		out[key(name, labels)] = m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		out[key(name, labels)] = m.GetGauge().GetValue()
	case dto.MetricType_UNTYPED:
		out[key(name, labels)] = m.GetUntyped().GetValue()
	case dto.MetricType_HISTOGRAM:
		h := m.GetHistogram()
		for _, b := range h.GetBucket() {
			le := strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)
			out[key(name+"_bucket", append(slices.Clone(labels), &dto.LabelPair{Name: ptr("le"), Value: &le}))] = float64(b.GetCumulativeCount())
		}
		out[key(name+"_bucket", append(slices.Clone(labels), &dto.LabelPair{Name: ptr("le"), Value: ptr("+Inf")}))] = float64(h.GetSampleCount())
		out[key(name+"_sum", labels)] = h.GetSampleSum()
		out[key(name+"_count", labels)] = float64(h.GetSampleCount())
	case dto.MetricType_SUMMARY:
		s := m.GetSummary()
		for _, q := range s.GetQuantile() {
			qs := strconv.FormatFloat(q.GetQuantile(), 'g', -1, 64)
			out[key(name, append(slices.Clone(labels), &dto.LabelPair{Name: ptr("quantile"), Value: &qs}))] = q.GetValue()
		}
		out[key(name+"_sum", labels)] = s.GetSampleSum()
		out[key(name+"_count", labels)] = float64(s.GetSampleCount())
	}
	return out
}

func ptr(s string) *string { return &s }

func key(name string, labels []*dto.LabelPair) string {
	if len(labels) == 0 {
		return name
	}
	parts := make([]string, len(labels))
	for i, l := range labels {
		parts[i] = fmt.Sprintf("%s=%q", l.GetName(), l.GetValue())
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

func checkLabels(name string, labels []*dto.LabelPair) error {
	for _, l := range labels {
		if LooksIdentifying(l.GetValue()) {
			return fmt.Errorf("metricstest: %s{%s=%q}: a label value that looks like an address or an ID", name, l.GetName(), l.GetValue())
		}
	}
	return nil
}

var (
	// nodeID is a node ID as veil writes it: 52 characters of base32.
	nodeID = regexp.MustCompile(`[a-z2-7]{52}`)
	// hexID is a digest, a key or a circuit ID written in hex.
	hexID = regexp.MustCompile(`(?i)\b[0-9a-f]{16,}\b`)
	// bigNumber is an integer as large as a circuit or stream ID is
	// likely to be; bucket bounds and small enum values stay below it.
	bigNumber = regexp.MustCompile(`^[0-9]{5,}$`)
	// hostPort is a host name or address with a port.
	hostPort = regexp.MustCompile(`[A-Za-z0-9.\]-]:[0-9]{1,5}\b`)
)

// LooksIdentifying says a label value looks like something that names a
// peer, a client, a destination or a circuit: an IP address (with or
// without a port, a prefix or a zone), a host:port, a node ID, a hex
// digest or a large integer such as a circuit ID.
func LooksIdentifying(v string) bool {
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '"' || r == '(' || r == ')' }) {
		if _, err := netip.ParseAddr(f); err == nil {
			return true
		}
		if _, err := netip.ParseAddrPort(f); err == nil {
			return true
		}
		if _, err := netip.ParsePrefix(f); err == nil {
			return true
		}
	}
	return nodeID.MatchString(v) || hexID.MatchString(v) || bigNumber.MatchString(v) || hostPort.MatchString(v) ||
		strings.Contains(strings.ToLower(v), "localhost")
}
