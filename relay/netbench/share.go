package netbench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ShareTargetMBps is what issue 5 asks of share and of fetch on the
// 6-relay testnet.
const ShareTargetMBps = 50

// ShareFetch is one `veil share` of a file of random bytes and one `veil
// fetch` of the link it printed, each run as a user runs it: a process of
// the built binary with the testnet's client config.
type ShareFetch struct {
	Bytes    int64   `json:"bytes"`
	SHA256   string  `json:"sha256"`
	Share    *FileOp `json:"share,omitempty"`
	Fetch    *FileOp `json:"fetch,omitempty"`
	BitExact bool    `json:"bit_exact"`
}

// FileOp is one share or fetch. Seconds run from starting the process to
// its exit, so they include its consensus fetch and circuit builds: that
// is what a user waits for. CPU is the process's own (rusage) and the
// testnet's relays' (/proc deltas over the same window); the seeds' is
// kept apart, as the figure asked for is client plus relays.
type FileOp struct {
	Seconds      float64            `json:"seconds"`
	MBps         float64            `json:"MBps"`
	ClientCPUS   float64            `json:"client_cpu_s"`
	RelayCPUS    float64            `json:"relay_cpu_s"`
	SeedCPUS     float64            `json:"seed_cpu_s"`
	PerRelayCPUS map[string]float64 `json:"per_relay_cpu_s"`
	CPUMsPerMB   float64            `json:"client_and_relays_cpu_ms_per_MB"`
	Load         Load               `json:"load"`
	Log          string             `json:"log"`
}

// shareFetch shares and fetches Runs times, as the other throughput
// tests run: one sample on a shared machine says little.
func (b *bench) shareFetch(ctx context.Context) error {
	for run := range b.o.Runs {
		if err := b.shareFetchOnce(ctx, run); err != nil {
			return err
		}
	}
	return nil
}

// shareFetchOnce shares a fresh random file (fresh, so that nothing a
// relay or the client kept from an earlier run can help), fetches it back
// to a new file and checks the copy's SHA-256. The files are removed
// afterwards (100 MB each is not worth keeping); the processes' stderr
// stays in Dir.
func (b *bench) shareFetchOnce(ctx context.Context, run int) error {
	dir := filepath.Join(b.o.Dir, "share")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("share directory: %w", err)
	}
	defer os.RemoveAll(dir)
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	want, err := WriteRandom(in, b.sz.share)
	if err != nil {
		return fmt.Errorf("write the file to share: %w", err)
	}
	sf := &ShareFetch{Bytes: b.sz.share, SHA256: hex.EncodeToString(want)}
	b.r.ShareFetch = append(b.r.ShareFetch, sf)

	var stdout bytes.Buffer
	sf.Share, err = b.veilOp(ctx, fmt.Sprintf("share-%d", run), &stdout, nil, "share", "--config", b.m.ClientConfig, in)
	if err != nil {
		return fmt.Errorf("veil share: %w", err)
	}
	link := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(link, "veil:") {
		return fmt.Errorf("veil share printed %q, not a veil: link", link)
	}
	logf(b.o.Log, "share %d MB: %.1f MB/s (%.2f s); CPU client %.2f s + relays %.2f s = %.1f ms/MB; cores: machine %.2f, other %.2f",
		sf.Bytes/MB, sf.Share.MBps, sf.Share.Seconds, sf.Share.ClientCPUS, sf.Share.RelayCPUS, sf.Share.CPUMsPerMB,
		sf.Share.Load.MachineCores, sf.Share.Load.OtherCores)

	// The link goes on standard input, not the command line: it is the
	// file's key, and the machine is shared (ps shows arguments).
	sf.Fetch, err = b.veilOp(ctx, fmt.Sprintf("fetch-%d", run), io.Discard, strings.NewReader(link), "fetch", "--config", b.m.ClientConfig, "-o", out, "-")
	if err != nil {
		return fmt.Errorf("veil fetch: %w", err)
	}
	got, err := FileSHA256(out)
	if err != nil {
		return fmt.Errorf("hash the fetched file: %w", err)
	}
	sf.BitExact = bytes.Equal(got, want)
	logf(b.o.Log, "fetch %d MB: %.1f MB/s (%.2f s); CPU client %.2f s + relays %.2f s = %.1f ms/MB; cores: machine %.2f, other %.2f; bit-exact: %v",
		sf.Bytes/MB, sf.Fetch.MBps, sf.Fetch.Seconds, sf.Fetch.ClientCPUS, sf.Fetch.RelayCPUS, sf.Fetch.CPUMsPerMB,
		sf.Fetch.Load.MachineCores, sf.Fetch.Load.OtherCores, sf.BitExact)
	if !sf.BitExact {
		return fmt.Errorf("fetched file's SHA-256 is %x, the shared file's %x", got, want)
	}
	return nil
}

// veilOp runs the veil binary with args, its stderr (progress bar, logs)
// to Dir/name.log, and measures it. MBps is set only if it succeeded.
func (b *bench) veilOp(ctx context.Context, name string, stdout io.Writer, stdin io.Reader, args ...string) (*FileOp, error) {
	logPath := filepath.Join(b.o.Dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	defer lf.Close()
	op := &FileOp{Log: logPath, PerRelayCPUS: map[string]float64{}}

	relay0 := map[string]float64{}
	for _, p := range b.m.Relays {
		relay0[p.Name], _ = cpuSeconds(p.PID)
	}
	var seeds []int
	for _, p := range b.m.Seeds {
		seeds = append(seeds, p.PID)
	}
	seed0 := sumCPU(seeds)
	win := startWindow(b.veil)
	octx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := command(octx, b.o.Dir, lf, 5*time.Second, b.o.Binary, args...)
	cmd.Stdout, cmd.Stdin = stdout, stdin
	t0 := time.Now()
	err = run(cmd)
	op.Seconds = time.Since(t0).Seconds()
	op.Load = win.load()
	for _, p := range b.m.Relays {
		c, _ := cpuSeconds(p.PID)
		op.PerRelayCPUS[p.Name] = c - relay0[p.Name]
		op.RelayCPUS += c - relay0[p.Name]
	}
	op.SeedCPUS = sumCPU(seeds) - seed0
	if ps := cmd.ProcessState; ps != nil {
		op.ClientCPUS = (ps.UserTime() + ps.SystemTime()).Seconds()
		// The window counts the child as other work on the machine; it
		// is veil's.
		if op.Seconds > 0 {
			op.Load.VeilCores += op.ClientCPUS / op.Seconds
			op.Load.OtherCores -= op.ClientCPUS / op.Seconds
		}
	}
	if err != nil {
		return op, fmt.Errorf("%w (log: %s)", err, logPath)
	}
	mb := float64(b.sz.share) / MB
	op.MBps = mb / op.Seconds
	op.CPUMsPerMB = (op.ClientCPUS + op.RelayCPUS) * 1000 / mb
	return op, nil
}

// WriteRandom writes n random bytes to path and returns their SHA-256.
func WriteRandom(path string, n int64) ([]byte, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	_, err = io.CopyN(io.MultiWriter(f, h), rand.Reader, n)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// FileSHA256 returns the SHA-256 of the file at path.
func FileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
