package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keyledger/keyledger/gateway/sigv4"
)

// compareConfig is what `bench --compare` was asked to do: drive each
// operation at the bare handler (bare.go) and at a fresh `keyledger serve`
// in one run, with the same load generator, and report rate, latency and
// the server process's CPU per request side by side with their ratios;
// then Encrypt on one connection, and the restart to /readyz right after a
// clean stop under write load.
type compareConfig struct {
	ops              []string
	concurrency      int
	warmup, duration time.Duration
	size             int
	single           bool // also Encrypt on one connection
	restart          bool // also the restart after a stop under load
	serveFlags       []string
	profileDir       string // when set, keep a CPU profile of keyledger per operation here
	dataDir          string // keyledger's data directory: kept (default a fresh one, removed)
	restarts         restartConfig
}

// cpuTime is a process's user plus system CPU time so far, read from
// /proc/<pid>/stat (every thread of the process; clock ticks of 10 ms).
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// fields are counted after its closing parenthesis.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad /proc stat")
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(utime+stime) * tick, nil
}

// selfCPU is this process's CPU time so far (the load generator's).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measured is one window of load at one server.
type measured struct {
	server    string
	res       benchResult
	serverCPU time.Duration // over the measured window
	benchCPU  time.Duration
}

func (m measured) rate() float64 { return float64(len(m.res.latencies)) / m.res.elapsed.Seconds() }

// cpuPerRequest is the server's CPU time per answered request.
func (m measured) cpuPerRequest() time.Duration {
	if len(m.res.latencies) == 0 {
		return 0
	}
	return m.serverCPU / time.Duration(len(m.res.latencies))
}

// measureAt drives fn on n connections and reads pid's CPU time at the
// start and end of the measured window (after warm-up).
func measureAt(server string, pid, n int, warmup, duration time.Duration, fn func(*fasthttp.Response) error) (measured, error) {
	m := measured{server: server}
	var cpu0, cpu1, self0, self1 time.Duration
	var err0, err1 error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(warmup)
		cpu0, err0 = cpuTime(pid)
		self0 = selfCPU()
		time.Sleep(duration)
		cpu1, err1 = cpuTime(pid)
		self1 = selfCPU()
	}()
	m.res = drive(n, warmup, duration, fn)
	wg.Wait()
	if err := errors.Join(err0, err1); err != nil {
		return m, err
	}
	m.serverCPU, m.benchCPU = cpu1-cpu0, self1-self0
	if m.res.errors > 0 {
		return m, fmt.Errorf("%s: %d requests failed, first: %v", server, m.res.errors, m.res.firstErr)
	}
	return m, nil
}

// startBare starts this binary's bare handler and waits until it answers.
func startBare(logTo io.Writer) (*exec.Cmd, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(exe, "--bare-serve", addr)
	cmd.Stdout, cmd.Stderr = logTo, logTo
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, addr, nil
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, "", errors.New("the bare handler did not start")
		}
	}
}

// runCompare is `bench --compare`.
func runCompare(cfg compareConfig, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "keyledger-bench --compare: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "keyledger-bench-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return fail(err)
	}
	defer logf.Close()
	dataDir := cfg.dataDir
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}

	bare, bareAddr, err := startBare(logf)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = bare.Process.Signal(syscall.SIGTERM); _ = bare.Wait() }()
	scfg := soakConfig{dir: dataDir, serveFlags: cfg.serveFlags}
	srv, _, err := startSoakServer(scfg, logf)
	if err != nil {
		return fail(err)
	}
	defer func() { srv.stop() }()
	id, sec, arn, err := firstAccessKey(filepath.Join(scfg.dir, "principals.json"))
	if err != nil {
		return fail(err)
	}
	client := func(host string, conns int) *benchClient {
		return &benchClient{hc: &fasthttp.HostClient{Addr: host, MaxConns: conns, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second},
			host: host, creds: sigv4.Credentials{AccessKeyID: id, Secret: sec}, region: "us-east-1",
			account: strings.Split(arn, ":")[4], principal: arn}
	}
	kl := client(strings.TrimPrefix(srv.endpoint, "http://"), cfg.concurrency)
	bc := client(bareAddr, cfg.concurrency)

	fmt.Fprintf(stdout, "keyledger against the bare handler (Fiber + encoding/json + the operation's crypto, nothing else), one run:\n"+
		"%d-byte messages, SigV4-signed, %s (after %s warm-up) each; serve %s\n",
		cfg.size, cfg.duration, cfg.warmup, strings.Join(append([]string{"--data-dir <fresh>"}, cfg.serveFlags...), " "))
	fmt.Fprintf(stdout, "\n| operation | conns | server | requests/s | p50 | p99 | server CPU/request | server cores | load generator cores | ratio to bare (rate, CPU/request) |\n|---|---|---|---|---|---|---|---|---|---|\n")

	type job struct {
		op    string
		conns int
	}
	var jobs []job
	for _, op := range cfg.ops {
		if op != "" {
			jobs = append(jobs, job{op, cfg.concurrency})
		}
	}
	if cfg.single {
		jobs = append(jobs, job{"encrypt", 1})
	}
	status := 0
	for _, j := range jobs {
		op, ok := benchOps[j.op]
		if !ok {
			return fail(fmt.Errorf("unknown operation %q", j.op))
		}
		var pair [2]measured
		for i, target := range []struct {
			name string
			c    *benchClient
			pid  int
		}{{"bare", bc, bare.Process.Pid}, {"keyledger", kl, srv.cmd.Process.Pid}} {
			body, err := prepare(target.c, op, cfg.size)
			if err != nil {
				return fail(fmt.Errorf("%s %s: %v", target.name, j.op, err))
			}
			var prof chan error
			if target.name == "keyledger" && cfg.profileDir != "" {
				prof = make(chan error, 1)
				go func() {
					time.Sleep(cfg.warmup)
					prof <- srv.saveProfile(filepath.Join(cfg.profileDir, fmt.Sprintf("cpu-%s-c%d.pprof", j.op, j.conns)), cfg.duration)
				}()
			}
			m, err := measureAt(target.name, target.pid, j.conns, cfg.warmup, cfg.duration, func(resp *fasthttp.Response) error {
				return target.c.call(op.target, body, resp)
			})
			if prof != nil {
				if err := <-prof; err != nil {
					fmt.Fprintf(stderr, "profile: %v\n", err)
				}
				// Allocations since start (diff two with pprof -base).
				if err := srv.saveDebug("/debug/pprof/allocs", filepath.Join(cfg.profileDir, fmt.Sprintf("allocs-%s-c%d.pprof", j.op, j.conns))); err != nil {
					fmt.Fprintf(stderr, "profile: %v\n", err)
				}
			}
			if err != nil {
				fmt.Fprintf(stderr, "%v\n", err)
				status = 1
			}
			pair[i] = m
		}
		for _, m := range pair {
			ratio := ""
			if m.server == "keyledger" && pair[0].rate() > 0 && pair[0].cpuPerRequest() > 0 {
				ratio = fmt.Sprintf("**%.2f×, %.2f×**", m.rate()/pair[0].rate(), float64(m.cpuPerRequest())/float64(pair[0].cpuPerRequest()))
			}
			fmt.Fprintf(stdout, "| %s | %d | %s | %.0f | %.2f ms | %.2f ms | %.0f µs | %.2f | %.2f | %s |\n",
				op.target, j.conns, m.server, m.rate(), ms(m.res.pct(0.5)), ms(m.res.pct(0.99)),
				float64(m.cpuPerRequest())/float64(time.Microsecond), m.serverCPU.Seconds()/cfg.duration.Seconds(),
				m.benchCPU.Seconds()/cfg.duration.Seconds(), ratio)
		}
	}
	if cfg.restart {
		if err := restartUnderLoad(srv, kl, scfg, cfg, logf, stdout, stderr); err != nil {
			return fail(err)
		}
	}
	return status
}

// prepare creates the operation's key on the server c talks to and
// returns the request body to send.
func prepare(c *benchClient, op benchOp, size int) ([]byte, error) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := c.call("CreateKey", []byte(op.createKey), resp); err != nil {
		return nil, err
	}
	var created struct{ KeyMetadata struct{ KeyId string } }
	if err := json.Unmarshal(resp.Body(), &created); err != nil {
		return nil, err
	}
	message := make([]byte, size)
	_, _ = rand.Read(message)
	return op.body(c, created.KeyMetadata.KeyId, message)
}

// saveProfile writes a CPU profile of the server over the next d to path
// (from serve --debug-listen).
func (s *soakServer) saveProfile(path string, d time.Duration) error {
	return s.saveDebug(fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds())), path)
}

// saveDebug writes what the server's debug endpoint at route answers to
// path.
func (s *soakServer) saveDebug(route, path string) error {
	resp, err := http.Get(s.debug + route)
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
