package netbench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Samples are raw measurements with their summary.
type Samples struct {
	N      int       `json:"n"`
	Median float64   `json:"median"`
	P5     float64   `json:"p5"`
	P95    float64   `json:"p95"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Raw    []float64 `json:"raw"`
}

// summarize fills the summary from raw, interpolating percentiles as the
// Tor anchor's bench.py does, so both columns mean the same thing.
func summarize(raw []float64) Samples {
	s := Samples{N: len(raw), Raw: raw}
	if len(raw) == 0 {
		return s
	}
	sorted := slices.Clone(raw)
	slices.Sort(sorted)
	s.Median, s.P5, s.P95 = pct(sorted, 0.5), pct(sorted, 0.05), pct(sorted, 0.95)
	s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
	return s
}

func pct(sorted []float64, q float64) float64 {
	k := float64(len(sorted)-1) * q
	lo := int(k)
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (sorted[hi]-sorted[lo])*(k-float64(lo))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return summarize(xs).Median
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Transfer is one single-stream download through the SOCKS proxy.
type Transfer struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	MBps    float64 `json:"MBps"`
	TTFBMS  float64 `json:"ttfb_ms"`
	// CPU seconds used during the download by the relays (all of them),
	// by the proxy, and per MB moved.
	RelayCPUS      float64            `json:"relay_cpu_s"`
	ProxyCPUS      float64            `json:"proxy_cpu_s"`
	RelayCPUMsPerM float64            `json:"relay_cpu_ms_per_MB"`
	AllCPUMsPerMB  float64            `json:"relays_and_proxy_cpu_ms_per_MB"`
	PerRelayCPUS   map[string]float64 `json:"per_relay_cpu_s"`
	Load           Load               `json:"load"`
}

// Burst is one test of n concurrent streams, each on its own circuit.
type Burst struct {
	Streams       int      `json:"streams"`
	BytesEach     int64    `json:"bytes_each"`
	OK            int      `json:"ok"`
	WallS         float64  `json:"wall_s"`
	AggregateMBps float64  `json:"aggregate_MBps"`
	PerStreamMBps Samples  `json:"per_stream_MBps"`
	Errors        []string `json:"errors,omitempty"`
	Load          Load     `json:"load"`
}

// Load is how busy the machine was during a test: all of it, the veil
// processes and this one (the web server and the reader), and the rest,
// which is other work on a shared machine.
type Load struct {
	MachineCores float64 `json:"machine_busy_cores"`
	VeilCores    float64 `json:"veil_processes_cores"`
	HarnessCores float64 `json:"harness_cores"`
	OtherCores   float64 `json:"other_cores"`
}

// Memory is the relays' resident memory before and after opening idle
// circuits.
type Memory struct {
	Circuits     int              `json:"circuits"`
	Asked        int              `json:"asked"`
	BuildS       float64          `json:"build_s"`
	Failed       int              `json:"failed"`
	BeforeKB     map[string]int64 `json:"rss_before_kB"`
	HalfCircuits int              `json:"half_circuits"`
	HalfKB       map[string]int64 `json:"rss_half_kB"`
	AfterKB      map[string]int64 `json:"rss_after_kB"`
	HopsPerRelay map[string]int   `json:"circuit_hops_per_relay"`
	// KBPerCircuitHop is the relays' summed RSS growth divided by the
	// circuit hops they carry (3 per circuit).
	KBPerCircuitHop float64 `json:"kB_per_circuit_per_relay"`
	// KBPer1000 is that for 1,000 circuits at one relay.
	KBPer1000 float64 `json:"kB_per_1000_circuits_per_relay"`
	// MarginalKBPerCircuitHop is the same over the second half of the
	// circuits only, without the one-off costs of the first.
	MarginalKBPerCircuitHop float64 `json:"marginal_kB_per_circuit_per_relay"`
}

// Ceiling is the TLS-chain ceiling from the limits anchor.
type Ceiling struct {
	Measured bool      `json:"measured"`
	Reason   string    `json:"reason,omitempty"` // why not measured
	Command  string    `json:"command,omitempty"`
	MBps     float64   `json:"median_MBps"`
	Runs     []float64 `json:"runs_MBps,omitempty"`
	Line     string    `json:"line,omitempty"`
}

// ---- /proc --------------------------------------------------------------

// clockTick is USER_HZ, 100 on every Linux this runs on.
const clockTick = 100

// cpuSeconds is utime+stime of pid from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad times", pid)
	}
	return float64(u+s) / clockTick, nil
}

// rssKB is VmRSS of pid from /proc/PID/status.
func rssKB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fs := strings.Fields(rest)
			if len(fs) > 0 {
				return strconv.ParseInt(fs[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// machineBusy is the machine's busy CPU time in seconds from /proc/stat
// (everything but idle and iowait).
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy uint64
	for i, x := range f[1:] {
		v, _ := strconv.ParseUint(x, 10, 64)
		if i == 3 || i == 4 || i >= 7 { // idle, iowait; steal, guest are not ours
			continue
		}
		busy += v
	}
	return float64(busy) / clockTick
}

// window measures Load over a test.
type window struct {
	t0      time.Time
	machine float64
	veil    float64
	self    float64
	pids    []int
}

func startWindow(pids []int) *window {
	w := &window{t0: time.Now(), pids: pids, machine: machineBusy(), self: selfCPU()}
	w.veil = sumCPU(pids)
	return w
}

func (w *window) load() Load {
	d := time.Since(w.t0).Seconds()
	if d <= 0 {
		return Load{}
	}
	l := Load{MachineCores: (machineBusy() - w.machine) / d, VeilCores: (sumCPU(w.pids) - w.veil) / d,
		HarnessCores: (selfCPU() - w.self) / d}
	l.OtherCores = l.MachineCores - l.VeilCores - l.HarnessCores
	return l
}

func sumCPU(pids []int) float64 {
	var t float64
	for _, p := range pids {
		s, _ := cpuSeconds(p)
		t += s
	}
	return t
}

func selfCPU() float64 {
	s, _ := cpuSeconds(os.Getpid())
	return s
}
