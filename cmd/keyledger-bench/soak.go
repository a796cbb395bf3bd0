package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keyledger/keyledger/gateway/sigv4"
	"github.com/keyledger/keyledger/ledger"
)

// soakConfig is what `bench --soak` was asked to do.
type soakConfig struct {
	sizes       []int64 // milestones, in events
	dir         string  // the server's data directory (kept for inspection)
	concurrency int
	size        int
	measure     time.Duration // the throughput/p99 window before each milestone
	serveFlags  []string
	bin         string // the keyledger binary (default --keyledger)
}

// parseSizes reads "1M,5M,20M".
func parseSizes(s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		mult := int64(1)
		switch {
		case strings.HasSuffix(f, "M"):
			mult, f = 1_000_000, strings.TrimSuffix(f, "M")
		case strings.HasSuffix(f, "k"):
			mult, f = 1_000, strings.TrimSuffix(f, "k")
		}
		n, err := strconv.ParseFloat(f, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad size %q", f)
		}
		if v := int64(n * float64(mult)); len(out) == 0 || v > out[len(out)-1] {
			out = append(out, v)
		} else {
			return nil, errors.New("sizes must grow")
		}
	}
	return out, nil
}

// soakServer is a `keyledger serve` child process on the soak's data dir.
type soakServer struct {
	cmd      *exec.Cmd
	endpoint string
	debug    string
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startSoakServer starts serve and waits until /readyz answers 200; it
// returns how long that took (the restart time on a non-empty ledger).
func startSoakServer(cfg soakConfig, logTo io.Writer) (*soakServer, time.Duration, error) {
	exe := keyledgerBinary
	if cfg.bin != "" {
		exe = cfg.bin
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, 0, err
	}
	debug, err := freeLoopbackAddr()
	if err != nil {
		return nil, 0, err
	}
	args := append([]string{"serve", "--data-dir", cfg.dir, "--listen", addr, "--debug-listen", debug, "--log-level", "warn"}, cfg.serveFlags...)
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logTo, logTo
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	s := &soakServer{cmd: cmd, endpoint: "http://" + addr, debug: "http://" + debug}
	for deadline := time.Now().Add(30 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(s.endpoint + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, time.Since(started), nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, 0, errors.New("serve did not become ready")
		}
	}
}

// rssBytes is the server's resident set size now.
func (s *soakServer) rssBytes() int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// saveHeap writes the server's heap profile (after a GC) to path.
func (s *soakServer) saveHeap(path string) error {
	resp, err := http.Get(s.debug + "/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

func (s *soakServer) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
}

// timedRun runs a keyledger subcommand to completion and returns its wall
// time and peak RSS.
func timedRun(args ...string) (time.Duration, int64, error) {
	cmd := exec.Command(keyledgerBinary, args...)
	var out strings.Builder
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss << 10
	}
	if err != nil {
		return took, rss, fmt.Errorf("%s: %v: %s", strings.Join(args[:2], " "), err, out.String())
	}
	return took, rss, nil
}

// dirBytes sums the sizes of the files under dir whose path contains part.
func dirBytes(dir, part string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, part) {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// ledgerSize asks the server for a signed checkpoint of the ledger as it
// is now and returns its size: the exact number of events, whatever
// earlier runs on the same data directory wrote.
func (c *benchClient) ledgerSize() (int64, error) {
	now := time.Now().UTC()
	amzDate := now.Format(sigv4.AmzDateFormat)
	headers := []sigv4.Header{{Name: "host", Value: c.host}, {Name: "x-amz-date", Value: amzDate}}
	req, err := http.NewRequest("GET", "http://"+c.host+"/audit/checkpoint", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("Authorization", sigv4.Sign(c.creds, c.region, "kms", "GET", "/audit/checkpoint", headers, nil, now))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	lines := strings.Split(string(body), "\n")
	if resp.StatusCode != 200 || len(lines) < 2 {
		return 0, fmt.Errorf("checkpoint: HTTP %d", resp.StatusCode)
	}
	return strconv.ParseInt(lines[1], 10, 64)
}

// soakRow is one milestone's measurements.
type soakRow struct {
	Events                 int64
	ThroughputPerSec       float64
	P50Ms, P99Ms           float64
	ServerRSSBytes         int64
	HeapProfile            string
	RestartSeconds         float64
	RSSAfterRestartBytes   int64
	ReportSeconds          float64
	ReportRSSBytes         int64
	VerifySeconds          float64
	VerifyRSSBytes         int64
	LedgerBytesPerEvent    float64 // the ledger stream's files
	JetStreamBytesPerEvent float64 // everything under jetstream/ (ledger, tiles, checkpoints, material)
}

// runSoak drives Encrypt through a real `keyledger serve` until each size,
// and at each one measures the server, restarts it and runs the report and
// the verifier on the stopped ledger.
func runSoak(cfg soakConfig, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "keyledger bench --soak: %v\n", err)
		return 1
	}
	if err := os.MkdirAll(cfg.dir, 0o700); err != nil {
		return fail(err)
	}
	logf, err := os.OpenFile(filepath.Join(cfg.dir, "soak-serve.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fail(err)
	}
	defer logf.Close()
	srv, _, err := startSoakServer(cfg, logf)
	if err != nil {
		return fail(err)
	}
	defer func() { srv.stop() }()
	id, secret, _, err := firstAccessKey(filepath.Join(cfg.dir, "principals.json"))
	if err != nil {
		return fail(err)
	}
	client := func(endpoint string) *benchClient {
		host := strings.TrimPrefix(endpoint, "http://")
		return &benchClient{hc: &fasthttp.HostClient{Addr: host, MaxConns: cfg.concurrency, ReadTimeout: 30 * time.Second},
			host: host, creds: sigv4.Credentials{AccessKeyID: id, Secret: secret}, region: "us-east-1"}
	}
	c := client(srv.endpoint)
	resp := fasthttp.AcquireResponse()
	if err := c.call("CreateKey", []byte(`{"Description":"keyledger soak"}`), resp); err != nil {
		return fail(err)
	}
	var created struct{ KeyMetadata struct{ KeyId string } }
	if err := json.Unmarshal(resp.Body(), &created); err != nil {
		return fail(err)
	}
	msg := make([]byte, cfg.size)
	body, _ := json.Marshal(map[string]any{"KeyId": created.KeyMetadata.KeyId, "Plaintext": msg})

	fmt.Fprintf(stdout, "soak: Encrypt of %d-byte plaintexts, %d connections, data dir %s\n", cfg.size, cfg.concurrency, cfg.dir)
	// A data directory from an earlier run continues where it stopped.
	events, err := c.ledgerSize()
	if err != nil {
		return fail(err)
	}
	var rows []soakRow
	rate := 10000.0
	for _, target := range cfg.sizes {
		if target <= events {
			continue
		}
		var last benchResult
		for events < target {
			// Load in slices; the last slice before the milestone is the
			// measured window.
			left := float64(target - events)
			d := time.Duration(left / rate * float64(time.Second))
			if d > cfg.measure {
				d = min(d-cfg.measure, 5*time.Minute)
			}
			d = max(d, time.Second)
			res := drive(cfg.concurrency, 0, d, func(resp *fasthttp.Response) error {
				return c.call("Encrypt", body, resp)
			})
			if res.errors > 0 {
				return fail(fmt.Errorf("%d Encrypts failed, first: %v", res.errors, res.firstErr))
			}
			events += int64(len(res.latencies))
			if r := float64(len(res.latencies)) / d.Seconds(); r > 0 {
				rate = r
			}
			last = res
			fmt.Fprintf(stderr, "soak: %d events (%.0f/s)\n", events, rate)
		}
		if n, err := c.ledgerSize(); err == nil {
			events = n
		}
		row := soakRow{Events: events, ThroughputPerSec: float64(len(last.latencies)) / last.elapsed.Seconds(),
			P50Ms: ms(last.pct(0.5)), P99Ms: ms(last.pct(0.99)), ServerRSSBytes: srv.rssBytes()}
		row.HeapProfile = filepath.Join(cfg.dir, fmt.Sprintf("heap-%d.pprof", events))
		if err := srv.saveHeap(row.HeapProfile); err != nil {
			fmt.Fprintf(stderr, "soak: heap profile: %v\n", err)
		}
		srv.stop()
		js := filepath.Join(cfg.dir, "jetstream")
		row.LedgerBytesPerEvent = float64(dirBytes(js, string(filepath.Separator)+ledger.DefaultStream+string(filepath.Separator))) / float64(events)
		row.JetStreamBytesPerEvent = float64(dirBytes(js, "")) / float64(events)
		took, rss, err := timedRun("report", "compliance", "--data-dir", cfg.dir, "--format", "json", "--out", os.DevNull)
		if err != nil {
			return fail(err)
		}
		row.ReportSeconds, row.ReportRSSBytes = took.Seconds(), rss
		took, rss, err = timedRun("audit", "verify", "--data-dir", cfg.dir)
		if err != nil {
			return fail(err)
		}
		row.VerifySeconds, row.VerifyRSSBytes = took.Seconds(), rss
		var restart time.Duration
		if srv, restart, err = startSoakServer(cfg, logf); err != nil {
			return fail(err)
		}
		row.RestartSeconds = restart.Seconds()
		time.Sleep(2 * time.Second) // let start-up garbage go
		row.RSSAfterRestartBytes = srv.rssBytes()
		c = client(srv.endpoint)
		rows = append(rows, row)
		printSoakRow(stdout, row)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rows)
	return 0
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func printSoakRow(w io.Writer, r soakRow) {
	mb := func(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }
	fmt.Fprintf(w, "| %d events | RSS %s (after restart %s) | restart %.1f s | report compliance %.1f s (%s) | audit verify %.1f s (%s) | ledger %.0f B/event, all JetStream %.0f B/event | Encrypt %.0f/s p50 %.2f ms p99 %.2f ms |\n",
		r.Events, mb(r.ServerRSSBytes), mb(r.RSSAfterRestartBytes), r.RestartSeconds, r.ReportSeconds, mb(r.ReportRSSBytes),
		r.VerifySeconds, mb(r.VerifyRSSBytes), r.LedgerBytesPerEvent, r.JetStreamBytesPerEvent, r.ThroughputPerSec, r.P50Ms, r.P99Ms)
}
