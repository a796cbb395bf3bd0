package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keyledger/keyledger/gateway/sigv4"
)

// restartConfig is the last part of `bench --compare`: grow the ledger
// under Encrypt load to each of sizes, stop keyledger while the load runs
// (SIGTERM, and with kill SIGKILL too), start it again on the same data
// directory and time it to /readyz 200, then follow its RSS while the
// background verifier walks the history.
type restartConfig struct {
	sizes []int64       // ledger sizes (events) to restart at; none: once, after load
	load  time.Duration // Encrypt load before each stop (at least a second)
	watch time.Duration // how long RSS is followed after ready, at most
	kill  bool          // also restart after kill -9
	// builds are the keyledger binaries restarted in turn after each stop
	// (before/after comparisons on one ledger); none: --keyledger.
	builds []build
}

// build is a keyledger binary and the name the table gives it.
type build struct{ name, path string }

// parseBuilds reads "old=/tmp/keyledger.old,new=bin/keyledger".
func parseBuilds(s string) ([]build, error) {
	var out []build
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		name, path, ok := strings.Cut(f, "=")
		if !ok || name == "" || path == "" {
			return nil, fmt.Errorf("bad build %q (want NAME=PATH)", f)
		}
		out = append(out, build{name, path})
	}
	return out, nil
}

// stopKind is how the server is stopped under load.
type stopKind struct {
	name string
	sig  syscall.Signal
}

// restartRow is one restart's measurements.
type restartRow struct {
	events            int64 // in the ledger when it was ready again
	stop              string
	build             string
	stopTook, ready   time.Duration
	rssReady, rss5    int64
	rssPeak, rssAfter int64
	verified          time.Duration // from ready until the background verifier had walked the chain (0: not within the watch)
	watched           time.Duration
}

// restartUnderLoad runs the restart part of the compare mode (see
// restartConfig). It leaves srv pointing at the last server started.
func restartUnderLoad(srv *soakServer, c *benchClient, scfg soakConfig, cfg compareConfig, logf io.Writer, stdout, stderr io.Writer) error {
	rc := cfg.restarts
	body, err := prepare(c, benchOps["encrypt"], cfg.size)
	if err != nil {
		return err
	}
	builds := rc.builds
	if len(builds) == 0 {
		builds = []build{{"keyledger", keyledgerBinary}}
	}
	stops := []stopKind{{"SIGTERM", syscall.SIGTERM}}
	if rc.kill {
		stops = append(stops, stopKind{"SIGKILL", syscall.SIGKILL})
	}
	sizes := rc.sizes
	if len(sizes) == 0 {
		sizes = []int64{0}
	}
	load := max(rc.load, time.Second)
	fmt.Fprintf(stdout, "\nrestart right after a stop under Encrypt load (%d connections, %s of load before each stop; "+
		"start to /readyz 200; RSS from /proc/<pid>/status at ready, 5 s later, its peak and 5 s after the background "+
		"verifier has walked the chain, followed for at most %s):\n\n"+
		"| ledger events | stop | build | stop took | start to /readyz | RSS at ready | RSS 5 s later | peak RSS | chain walked after | RSS then |\n"+
		"|---|---|---|---|---|---|---|---|---|---|\n", cfg.concurrency, load, rc.watch)
	for _, target := range sizes {
		if err := grow(c, body, cfg.concurrency, target, stderr); err != nil {
			return err
		}
		for _, st := range stops {
			for _, b := range builds {
				row, next, err := restartOnce(srv, c, body, scfg, b, st, load, rc.watch, cfg, logf)
				if err != nil {
					return fmt.Errorf("restart of %s after %s: %w", b.name, st.name, err)
				}
				c = next
				printRestartRow(stdout, row)
			}
		}
	}
	return nil
}

func printRestartRow(w io.Writer, r restartRow) {
	mb := func(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }
	walked, after := "not within "+r.watched.Round(time.Second).String(), "—"
	if r.verified > 0 {
		walked, after = fmt.Sprintf("%.0f s", r.verified.Seconds()), mb(r.rssAfter)
	}
	fmt.Fprintf(w, "| %d | %s | %s | %.2f s | **%.2f s** | %s | %s | %s | %s | %s |\n", r.events, r.stop, r.build,
		r.stopTook.Seconds(), r.ready.Seconds(), mb(r.rssReady), mb(r.rss5), mb(r.rssPeak), walked, after)
}

// grow drives Encrypt until the ledger holds at least target events.
func grow(c *benchClient, body []byte, conns int, target int64, stderr io.Writer) error {
	n, err := c.ledgerSize()
	if err != nil || n >= target {
		return err
	}
	stop := make(chan struct{})
	done := make(chan loadCount, 1)
	go func() { done <- loadUntil(c, body, conns, stop) }()
	defer func() {
		close(stop)
		<-done
	}()
	began, said := time.Now(), time.Now()
	for n < target {
		time.Sleep(time.Second)
		if n, err = c.ledgerSize(); err != nil {
			return err
		}
		if time.Since(said) >= 30*time.Second {
			said = time.Now()
			fmt.Fprintf(stderr, "restart: ledger at %d of %d events (%s)\n", n, target, time.Since(began).Round(time.Second))
		}
	}
	return nil
}

// loadCount is what a load answered.
type loadCount struct{ ok, failed int64 }

// loadUntil drives Encrypt on conns connections until stop is closed. A
// failed request (the server stopping) is counted and the worker pauses
// a moment, so that it does not spin while the server restarts.
func loadUntil(c *benchClient, body []byte, conns int, stop <-chan struct{}) loadCount {
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseResponse(resp)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := c.call("Encrypt", body, resp); err != nil {
					failed.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	return loadCount{ok.Load(), failed.Load()}
}

// restartOnce stops srv as st says while Encrypt load runs at it, starts
// b on the same data directory, times it to /readyz and follows its RSS.
// It returns a client of the new server.
func restartOnce(srv *soakServer, c *benchClient, body []byte, scfg soakConfig, b build, st stopKind, load, watch time.Duration,
	cfg compareConfig, logf io.Writer) (restartRow, *benchClient, error) {
	row := restartRow{stop: st.name, build: b.name}
	stop := make(chan struct{})
	done := make(chan loadCount, 1)
	go func() { done <- loadUntil(c, body, cfg.concurrency, stop) }()
	time.Sleep(load)
	began := time.Now()
	_ = srv.cmd.Process.Signal(st.sig)
	_ = srv.cmd.Wait()
	row.stopTook = time.Since(began)
	close(stop)
	if n := <-done; n.ok == 0 {
		return row, c, errors.New("no Encrypt succeeded before the stop")
	}

	scfg.bin = b.path
	next, took, err := startSoakServer(scfg, logf)
	if err != nil {
		return row, c, err
	}
	*srv = *next
	row.ready = took
	nc := c.at(srv.endpoint)
	readyAt := time.Now()
	row.rssReady = srv.rssBytes()
	row.rssPeak = row.rssReady
	var walkedAt time.Time
	lastPoll := readyAt
	for tick := time.NewTicker(200 * time.Millisecond); ; {
		<-tick.C
		since := time.Since(readyAt)
		rss := srv.rssBytes()
		row.rssPeak = max(row.rssPeak, rss)
		if row.rss5 == 0 && since >= 5*time.Second {
			row.rss5 = rss
			if cfg.profileDir != "" {
				name := fmt.Sprintf("heap-restart-%s-%s-%d.pprof", b.name, st.name, time.Now().Unix())
				_ = srv.saveDebug("/debug/pprof/heap", filepath.Join(cfg.profileDir, name))
			}
		}
		if walkedAt.IsZero() && time.Since(lastPoll) >= time.Second {
			lastPoll = time.Now()
			if walked, err := nc.chainWalked(); err == nil && walked {
				walkedAt = time.Now()
				row.verified = walkedAt.Sub(readyAt)
			}
		}
		if !walkedAt.IsZero() && time.Since(walkedAt) >= 5*time.Second && row.rss5 != 0 {
			row.rssAfter = rss
			tick.Stop()
			break
		}
		if since >= watch {
			tick.Stop()
			break
		}
	}
	row.watched = time.Since(readyAt)
	if row.events, err = nc.ledgerSize(); err != nil {
		return row, nc, err
	}
	return row, nc, nil
}

// at is c talking to another endpoint (a restarted server's).
func (c *benchClient) at(endpoint string) *benchClient {
	host := strings.TrimPrefix(endpoint, "http://")
	n := *c
	n.host = host
	n.hc = &fasthttp.HostClient{Addr: host, MaxConns: c.hc.MaxConns, ReadTimeout: c.hc.ReadTimeout, WriteTimeout: c.hc.WriteTimeout}
	return &n
}

// chainWalked reports whether the server's background verifier has walked
// the whole chain since it started: its live compliance report says the
// verification has not finished until then.
func (c *benchClient) chainWalked() (bool, error) {
	const path = "/reports/compliance?format=json"
	now := time.Now().UTC()
	amzDate := now.Format(sigv4.AmzDateFormat)
	headers := []sigv4.Header{{Name: "host", Value: c.host}, {Name: "x-amz-date", Value: amzDate}}
	req, err := http.NewRequest("GET", "http://"+c.host+path, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("Authorization", sigv4.Sign(c.creds, c.region, "kms", "GET", path, headers, nil, now))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, err
	}
	if resp.StatusCode != 200 {
		return false, fmt.Errorf("compliance report: HTTP %d", resp.StatusCode)
	}
	return !strings.Contains(string(b), "verification of the whole chain has not finished"), nil
}
