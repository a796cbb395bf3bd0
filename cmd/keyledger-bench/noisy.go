package main

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keyledger/keyledger/gateway/sigv4"
)

// noisyConfig is what `bench --noisy-neighbour` was asked to do: measure
// one account's (the victim's) Encrypt rate and latency alone and beside
// another account's (the noisy neighbour's) load, on a fresh server per
// serve configuration, so that configurations compare side by side in
// one run.
type noisyConfig struct {
	victimConns, noisyConns int
	loads                   []noisyLoad
	serves                  []noisyServe
	warmup, duration        time.Duration
	size                    int
	rounds                  int
}

// noisyLoad is the neighbour's workload: an operation on conns
// connections (noisyConns if 0), paced to rate requests per second when
// rate > 0.
type noisyLoad struct {
	name  string
	op    benchOp
	conns int
	rate  float64
	forge bool // sign as the victim's key id with a wrong secret
}

// noisyServe is one serve configuration to measure under: serve's flags,
// and the keyledger binary to run (default --keyledger), so that two
// builds compare in one run.
type noisyServe struct {
	name  string
	bin   string
	flags []string
}

// noisyLoads are the workloads --noisy-loads can name.
var noisyLoads = map[string]benchOp{
	"encrypt": benchOps["encrypt"],
	// create-key-rsa4096 creates RSA-4096 signing keys: hundreds of ms of
	// CPU each.
	"create-key-rsa4096": {"CreateKey", "", func(*benchClient, string, []byte) ([]byte, error) {
		return []byte(`{"KeySpec":"RSA_4096","KeyUsage":"SIGN_VERIFY","Description":"keyledger bench noisy neighbour"}`), nil
	}},
	// forged sends the victim's Encrypt claiming the victim's access key
	// id, signed with a wrong secret: each is refused by SigV4
	// (InvalidSignatureException, counted as the neighbour's "ok").
	"forged": {"Encrypt", "", func(_ *benchClient, _ string, msg []byte) ([]byte, error) {
		return json.Marshal(map[string]any{"KeyId": "alias/victim", "Plaintext": msg})
	}},
}

// parseNoisyLoads reads "encrypt,encrypt:256,create-key-rsa4096@5/s":
// NAME[:CONNECTIONS][@RATE/s].
func parseNoisyLoads(s string) ([]noisyLoad, error) {
	var out []noisyLoad
	for _, f := range strings.Split(s, ",") {
		name, pace, paced := strings.Cut(strings.TrimSpace(f), "@")
		name, conns, many := strings.Cut(name, ":")
		op, ok := noisyLoads[name]
		if !ok {
			return nil, fmt.Errorf("unknown load %q (want encrypt, forged or create-key-rsa4096, optionally :CONNECTIONS and @N/s)", name)
		}
		l := noisyLoad{name: strings.TrimSpace(f), op: op, forge: name == "forged"}
		if many {
			n, err := strconv.Atoi(conns)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("bad connection count %q in %q", conns, f)
			}
			l.conns = n
		}
		if paced {
			r, err := strconv.ParseFloat(strings.TrimSuffix(pace, "/s"), 64)
			if err != nil || r <= 0 {
				return nil, fmt.Errorf("bad rate %q in %q (want e.g. @5/s)", pace, f)
			}
			l.rate = r
		}
		out = append(out, l)
	}
	return out, nil
}

// parseNoisyServes reads "old=--quotas aws --no-fair-share;new=" or, to
// run another build, "main@bin/keyledger-main=;branch=": NAME[@BINARY]=FLAGS.
func parseNoisyServes(s string) ([]noisyServe, error) {
	var out []noisyServe
	for _, f := range strings.Split(s, ";") {
		name, flags, ok := strings.Cut(strings.TrimSpace(f), "=")
		name, bin, _ := strings.Cut(name, "@")
		if !ok || name == "" {
			return nil, fmt.Errorf("want NAME[@BINARY]=SERVE FLAGS, got %q", f)
		}
		out = append(out, noisyServe{name: name, bin: bin, flags: strings.Fields(flags)})
	}
	return out, nil
}

const (
	victimAccount = "111111111111"
	noisyAccount  = "222222222222"
)

// noisyPrincipals writes a principals file with two accounts of one
// administrator each and returns their credentials.
func noisyPrincipals(path string) (victim, noisy sigv4.Credentials, err error) {
	cred := func() sigv4.Credentials {
		id, sec := make([]byte, 8), make([]byte, 20)
		_, _ = rand.Read(id)
		_, _ = rand.Read(sec)
		return sigv4.Credentials{AccessKeyID: "AKIA" + strings.ToUpper(hex.EncodeToString(id)), Secret: hex.EncodeToString(sec)}
	}
	victim, noisy = cred(), cred()
	admin := func(c sigv4.Credentials) map[string]any {
		return map[string]any{"accessKeys": []map[string]string{{"id": c.AccessKeyID, "secret": c.Secret}},
			"policies": []json.RawMessage{json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`)}}
	}
	doc, _ := json.Marshal(map[string]any{"accounts": map[string]any{
		victimAccount: map[string]any{"users": map[string]any{"victim": admin(victim)}},
		noisyAccount:  map[string]any{"users": map[string]any{"noisy": admin(noisy)}},
	}})
	return victim, noisy, os.WriteFile(path, doc, 0o600)
}

// noisyRow is one measurement: the victim's result, alone or beside a
// load, and the neighbour's; or, with alone, the neighbour's load alone
// (what fair sharing must not cost it).
type noisyRow struct {
	serve  string
	load   string // "" for the victim alone
	alone  bool   // the neighbour's load alone: noisy holds its result
	victim benchResult
	noisy  benchResult
}

func runNoisy(cfg noisyConfig, stdout, stderr io.Writer) int {
	fmt.Fprintf(stdout, "noisy neighbour: victim (account %s) Encrypt of %d-byte messages on %d connections, alone and beside\n"+
		"a neighbour (account %s; NAME[:CONNECTIONS, default %d][@RATE]); %s each after %s warm-up; a fresh server per configuration\n\n",
		victimAccount, cfg.size, cfg.victimConns, noisyAccount, cfg.noisyConns, cfg.duration, cfg.warmup)
	var rows []noisyRow
	failed := false
	for round := range cfg.rounds {
		for _, sv := range cfg.serves {
			if cfg.rounds > 1 {
				fmt.Fprintf(stdout, "round %d, ", round+1)
			}
			fmt.Fprintf(stdout, "%s: keyledger serve %s\n", sv.name, strings.Join(sv.flags, " "))
			got, err := noisyServeRun(cfg, sv, stdout)
			rows = append(rows, got...)
			if err != nil {
				fmt.Fprintf(stderr, "keyledger-bench: %s: %v\n", sv.name, err)
				failed = true
			}
		}
	}
	fmt.Fprintf(stdout, "\n%-8s %-24s %12s %9s %9s %9s %12s %12s\n", "config", "neighbour", "victim req/s", "of alone", "p50", "p99", "noisy ok/s", "throttled/s")
	alone := map[string]float64{}
	for _, r := range rows {
		rate := float64(len(r.victim.latencies)) / r.victim.elapsed.Seconds()
		share := "100%"
		if r.load == "" {
			alone[r.serve] = rate
		} else if a := alone[r.serve]; a > 0 {
			share = fmt.Sprintf("%.0f%%", 100*rate/a)
		}
		if r.alone {
			fmt.Fprintf(stdout, "%-8s %-24s %12s %9s %9s %9s %12.1f %12.1f\n", r.serve, r.load+" alone", "", "",
				fmtMS(r.noisy.pct(0.50)), fmtMS(r.noisy.pct(0.99)), float64(len(r.noisy.latencies))/r.noisy.elapsed.Seconds(),
				float64(r.noisy.throttled)/r.noisy.elapsed.Seconds())
			if n := r.noisy.errors - r.noisy.throttled; n > 0 {
				fmt.Fprintf(stderr, "keyledger-bench: %s: %s alone saw %d errors other than throttling; first: %v\n",
					r.serve, r.load, n, r.noisy.firstErr)
				failed = true
			}
			continue
		}
		load, nok, nthr := "none (alone)", "", ""
		if r.load != "" {
			load = r.load
			nok = fmt.Sprintf("%.1f", float64(len(r.noisy.latencies))/r.noisy.elapsed.Seconds())
			nthr = fmt.Sprintf("%.1f", float64(r.noisy.throttled)/r.noisy.elapsed.Seconds())
		}
		fmt.Fprintf(stdout, "%-8s %-24s %12.0f %9s %9s %9s %12s %12s\n", r.serve, load, rate, share,
			fmtMS(r.victim.pct(0.50)), fmtMS(r.victim.pct(0.99)), nok, nthr)
		if r.victim.errors > 0 {
			fmt.Fprintf(stderr, "keyledger-bench: %s beside %s: the victim saw %d errors (%d throttled); first: %v\n",
				r.serve, load, r.victim.errors, r.victim.throttled, r.victim.firstErr)
			failed = true
		}
		if n := r.noisy.errors - r.noisy.throttled; n > 0 {
			fmt.Fprintf(stderr, "keyledger-bench: %s beside %s: the neighbour saw %d errors other than throttling; first: %v\n",
				r.serve, load, n, r.noisy.firstErr)
			failed = true
		}
	}
	if failed {
		return 1
	}
	return 0
}

func fmtMS(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// noisyServeRun starts one server and measures the victim alone, then
// beside each load.
func noisyServeRun(cfg noisyConfig, sv noisyServe, stdout io.Writer) ([]noisyRow, error) {
	dir, err := os.MkdirTemp("", "keyledger-noisy-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	pfile := filepath.Join(dir, "principals.json")
	vc, nc, err := noisyPrincipals(pfile)
	if err != nil {
		return nil, err
	}
	var serveLog strings.Builder
	srv, _, err := startSoakServer(soakConfig{dir: filepath.Join(dir, "data"), bin: sv.bin,
		serveFlags: append([]string{"--principals", pfile}, sv.flags...)}, &lockedWriter{w: &serveLog})
	if err != nil {
		return nil, fmt.Errorf("%v\n%s", err, serveLog.String())
	}
	defer srv.stop()
	u, _ := url.Parse(srv.endpoint)
	client := func(c sigv4.Credentials, conns int) *benchClient {
		return &benchClient{hc: &fasthttp.HostClient{Addr: u.Host, MaxConns: conns, ReadTimeout: 60 * time.Second, WriteTimeout: 30 * time.Second},
			host: u.Host, creds: c, region: "us-east-1"}
	}
	victim := client(vc, cfg.victimConns)
	msg := make([]byte, cfg.size)
	_, _ = rand.Read(msg)
	vbody, err := keyAndBody(victim, benchOps["encrypt"], msg)
	if err != nil {
		return nil, fmt.Errorf("victim: %v", err)
	}
	victimRun := func() benchResult {
		return drive(cfg.victimConns, cfg.warmup, cfg.duration, func(resp *fasthttp.Response) error {
			return victim.call("Encrypt", vbody, resp)
		})
	}
	rows := []noisyRow{{serve: sv.name, victim: victimRun()}}
	printNoisyRow(stdout, rows[0])
	for _, l := range cfg.loads {
		conns := cmp.Or(l.conns, cfg.noisyConns)
		creds := nc
		if l.forge {
			creds = sigv4.Credentials{AccessKeyID: vc.AccessKeyID, Secret: "not-the-victims-secret"}
		}
		noisy := client(creds, conns)
		nbody, err := keyAndBody(noisy, l.op, msg)
		if err != nil {
			return rows, fmt.Errorf("neighbour %s: %v", l.name, err)
		}
		noisyRun := func(tokens <-chan struct{}) benchResult {
			return drivePaced(conns, cfg.warmup, cfg.duration, tokens, func(resp *fasthttp.Response) error {
				err := noisy.call(l.op.target, nbody, resp)
				if !l.forge {
					return err
				}
				if err == nil {
					return errors.New("a forged request was answered as the victim's")
				}
				if strings.Contains(err.Error(), "InvalidSignatureException") {
					return nil // refused as it must be
				}
				return err
			})
		}
		if l.rate == 0 {
			// The neighbour alone: fair sharing must not cost a lone
			// busy account its rate.
			r := noisyRow{serve: sv.name, load: l.name, alone: true, noisy: noisyRun(nil)}
			printNoisyRow(stdout, r)
			rows = append(rows, r)
		}
		var tokens chan struct{}
		if l.rate > 0 {
			tokens = make(chan struct{})
			go pace(tokens, l.rate, cfg.warmup+cfg.duration)
		}
		done := make(chan benchResult)
		go func() { done <- noisyRun(tokens) }()
		r := noisyRow{serve: sv.name, load: l.name, victim: victimRun()}
		r.noisy = <-done
		printNoisyRow(stdout, r)
		rows = append(rows, r)
	}
	return rows, nil
}

// pace hands out rate tokens a second for d, then closes tokens. A token
// no worker is free to take is dropped: the load is open-loop, as a
// neighbour's clients do not slow down because the server does.
func pace(tokens chan<- struct{}, rate float64, d time.Duration) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	end := time.After(d)
	for {
		select {
		case <-tick.C:
			select {
			case tokens <- struct{}{}:
			default:
			}
		case <-end:
			close(tokens)
			return
		}
	}
}

// keyAndBody creates the key an operation needs, if it needs one, and
// returns the request body.
func keyAndBody(c *benchClient, op benchOp, msg []byte) ([]byte, error) {
	var id string
	if op.createKey != "" {
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		if err := c.call("CreateKey", []byte(op.createKey), resp); err != nil {
			return nil, err
		}
		var created struct{ KeyMetadata struct{ KeyId string } }
		if err := json.Unmarshal(resp.Body(), &created); err != nil {
			return nil, err
		}
		id = created.KeyMetadata.KeyId
	}
	return op.body(c, id, msg)
}

func printNoisyRow(w io.Writer, r noisyRow) {
	if r.alone {
		fmt.Fprintf(w, "  %-40s %6.0f req/s  p50 %s  p99 %s\n", "neighbour "+r.load+" alone",
			float64(len(r.noisy.latencies))/r.noisy.elapsed.Seconds(), fmtMS(r.noisy.pct(0.50)), fmtMS(r.noisy.pct(0.99)))
		return
	}
	what := "victim alone"
	if r.load != "" {
		what = "victim beside " + r.load
	}
	fmt.Fprintf(w, "  %-40s %6.0f req/s  p50 %s  p99 %s", what, float64(len(r.victim.latencies))/r.victim.elapsed.Seconds(),
		fmtMS(r.victim.pct(0.50)), fmtMS(r.victim.pct(0.99)))
	if r.load != "" {
		fmt.Fprintf(w, "; neighbour %.1f ok/s, %.1f throttled/s", float64(len(r.noisy.latencies))/r.noisy.elapsed.Seconds(),
			float64(r.noisy.throttled)/r.noisy.elapsed.Seconds())
	}
	fmt.Fprintln(w)
}

// lockedWriter serialises writes of the server's output.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
