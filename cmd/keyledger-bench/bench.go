package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keyledger/keyledger/gateway/principals"
	"github.com/keyledger/keyledger/gateway/sigv4"
)

// benchClient sends SigV4-signed AWS JSON requests over a pool of
// keep-alive connections.
type benchClient struct {
	hc        *fasthttp.HostClient
	host      string
	creds     sigv4.Credentials
	region    string
	account   string // the caller's account and ARN, when known (--credentials-from)
	principal string
}

func (c *benchClient) call(op string, body []byte, resp *fasthttp.Response) error {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	now := time.Now().UTC()
	amzDate := now.Format(sigv4.AmzDateFormat)
	target := "TrentService." + op
	headers := []sigv4.Header{
		{Name: "content-type", Value: "application/x-amz-json-1.1"},
		{Name: "host", Value: c.host},
		{Name: "x-amz-date", Value: amzDate},
		{Name: "x-amz-target", Value: target},
	}
	req.Header.SetMethod("POST")
	req.SetRequestURI("http://" + c.host + "/")
	req.Header.SetContentType("application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Target", target)
	req.Header.Set("Authorization", sigv4.Sign(c.creds, c.region, "kms", "POST", "/", headers, body, now))
	req.SetBody(body)
	if err := c.hc.Do(req, resp); err != nil {
		return err
	}
	if resp.StatusCode() != 200 {
		return fmt.Errorf("%s: HTTP %d: %s", op, resp.StatusCode(), resp.Body())
	}
	return nil
}

func bench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keyledger-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", "http://127.0.0.1:8080", "keyledger endpoint")
	concurrency := fs.Int("concurrency", 64, "concurrent connections, each with one request in flight")
	duration := fs.Duration("duration", 10*time.Second, "how long to measure")
	warmup := fs.Duration("warmup", 2*time.Second, "load before measuring")
	size := fs.Int("size", 1024, "plaintext or message bytes per request")
	accessKey := fs.String("access-key", os.Getenv("AWS_ACCESS_KEY_ID"), "access key id to sign with (default $AWS_ACCESS_KEY_ID)")
	secretKey := fs.String("secret-key", os.Getenv("AWS_SECRET_ACCESS_KEY"), "secret access key to sign with (default $AWS_SECRET_ACCESS_KEY)")
	credsFrom := fs.String("credentials-from", "", "take the first access key of this principals file (e.g. a fresh server's <data-dir>/principals.json)")
	region := fs.String("region", "us-east-1", "region to sign for")
	wait := fs.Duration("wait", 15*time.Second, "how long to wait for the service to come up")
	subscribers := fs.Int("subscribers", 0, "also hold this many live audit streams (GET /audit/events, Server-Sent Events) open and read them")
	subscribeQuery := fs.String("subscribe-query", "", "query of those streams, e.g. event=Decrypt (default: every event)")
	opName := fs.String("op", "encrypt", "operation to drive: "+strings.Join(slices.Sorted(maps.Keys(benchOps)), ", "))
	soak := fs.Bool("soak", false, "soak mode: start `keyledger serve` on --soak-dir and drive Encrypt through it to each of --soak-sizes events,\nmeasuring RSS, restart, report compliance, audit verify, bytes per event and throughput/p99 at each")
	soakSizes := fs.String("soak-sizes", "1M,5M,20M", "soak mode: the ledger sizes (events) to measure at")
	soakDir := fs.String("soak-dir", "", "soak mode: the server's data directory (kept afterwards; default a new temporary directory)")
	soakServe := fs.String("soak-serve-flags", "", "soak mode: extra flags for serve, space-separated (e.g. --ledger-compression none)")
	noisy := fs.Bool("noisy-neighbour", false, "noisy-neighbour mode: for each --noisy-serve configuration start a fresh keyledger serve with two\naccounts and measure one's (the victim's) Encrypt alone and beside each of the other's --noisy-loads")
	victimConns := fs.Int("victim-concurrency", 4, "noisy-neighbour mode: the victim's connections")
	noisyConns := fs.Int("noisy-concurrency", 64, "noisy-neighbour mode: the neighbour's connections")
	noisyLoadList := fs.String("noisy-loads", "encrypt,encrypt:256,create-key-rsa4096@5/s", "noisy-neighbour mode: the neighbour's workloads, comma-separated: encrypt, forged (the victim's\nkey id, a wrong secret) or create-key-rsa4096,\neach optionally on :CONNECTIONS (default --noisy-concurrency) and paced with @N/s")
	noisyServeList := fs.String("noisy-serve", "old=--quotas aws --no-fair-share;new=", "noisy-neighbour mode: NAME[@BINARY]=SERVE FLAGS;... configurations to compare (BINARY: default --keyledger)")
	fs.StringVar(&keyledgerBinary, "keyledger", defaultKeyledger(), "soak and noisy-neighbour modes: the keyledger binary to start")
	rounds := fs.Int("rounds", 1, "noisy-neighbour mode: how many times to measure every configuration, in turn")
	compare := fs.Bool("compare", false, "compare mode: start the bare handler (--bare-serve) and a fresh `keyledger serve`, drive each of\n--compare-ops at both in one run and print rate, latency and server CPU per request side by side,\nwith the ratios; then Encrypt on one connection and the restarts after a stop under load")
	compareOps := fs.String("compare-ops", "encrypt,generate-data-key,sign-p256", "compare mode: the operations to drive (encrypt, generate-data-key, sign-p256)")
	compareSingle := fs.Bool("compare-single", true, "compare mode: also drive Encrypt on one connection")
	compareRestart := fs.Bool("compare-restart", true, "compare mode: also time the restart after a clean stop under load")
	serveFlags := fs.String("serve-flags", "", "compare mode: extra flags for keyledger serve, space-separated (e.g. --unsafe-no-fsync)")
	profileDir := fs.String("profile-dir", "", "compare mode: save a CPU profile of keyledger over each measured window into this directory")
	compareDir := fs.String("compare-data-dir", "", "compare mode: keyledger's data directory, kept afterwards (default a fresh temporary one)")
	restartLoad := fs.Duration("restart-load", time.Second, "compare mode: how long Encrypt load runs before each stop whose restart is timed")
	restartSizes := fs.String("restart-events", "", "compare mode: grow the ledger under Encrypt load to each of these sizes (e.g. 1M,2M,4M) and time\nthe restarts there (default: once, after --restart-load)")
	restartWatch := fs.Duration("restart-watch", 2*time.Minute, "compare mode: how long the RSS of a restarted server is followed, at most")
	restartKill := fs.Bool("restart-kill", true, "compare mode: also time the restart after kill -9 under load")
	restartBuilds := fs.String("restart-builds", "", "compare mode: NAME=BINARY,... keyledger binaries restarted in turn after each stop, on the same ledger\n(before/after comparisons; default --keyledger)")
	bareServe := fs.String("bare-serve", "", "serve the bare handler on this address until stopped (what --compare measures against)")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *bareServe != "" {
		return serveBare(*bareServe, stderr)
	}
	if *compare {
		rc := restartConfig{load: *restartLoad, watch: *restartWatch, kill: *restartKill}
		var err error
		if *restartSizes != "" {
			if rc.sizes, err = parseSizes(*restartSizes); err != nil {
				fmt.Fprintf(stderr, "keyledger-bench: --restart-events: %v\n", err)
				return 2
			}
		}
		if rc.builds, err = parseBuilds(*restartBuilds); err != nil {
			fmt.Fprintf(stderr, "keyledger-bench: --restart-builds: %v\n", err)
			return 2
		}
		return runCompare(compareConfig{ops: strings.Split(*compareOps, ","), concurrency: *concurrency, warmup: *warmup,
			duration: *duration, size: *size, single: *compareSingle, restart: *compareRestart,
			serveFlags: strings.Fields(*serveFlags), profileDir: *profileDir,
			dataDir: *compareDir, restarts: rc}, stdout, stderr)
	}
	if *noisy {
		loads, err := parseNoisyLoads(*noisyLoadList)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger-bench: --noisy-loads: %v\n", err)
			return 2
		}
		serves, err := parseNoisyServes(*noisyServeList)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger-bench: --noisy-serve: %v\n", err)
			return 2
		}
		if *victimConns < 1 || *noisyConns < 1 || *rounds < 1 {
			fmt.Fprintln(stderr, "keyledger-bench: --victim-concurrency, --noisy-concurrency and --rounds must be ≥ 1")
			return 2
		}
		return runNoisy(noisyConfig{victimConns: *victimConns, noisyConns: *noisyConns, loads: loads, serves: serves,
			warmup: *warmup, duration: *duration, size: *size, rounds: *rounds}, stdout, stderr)
	}
	if *soak {
		sizes, err := parseSizes(*soakSizes)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger-bench: --soak-sizes: %v\n", err)
			return 2
		}
		dir := *soakDir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "keyledger-soak-"); err != nil {
				fmt.Fprintf(stderr, "keyledger-bench: %v\n", err)
				return 1
			}
		}
		return runSoak(soakConfig{sizes: sizes, dir: dir, concurrency: *concurrency, size: *size, measure: *duration,
			serveFlags: strings.Fields(*soakServe)}, stdout, stderr)
	}
	var account, principal string
	if *credsFrom != "" {
		id, sec, arn, err := firstAccessKey(*credsFrom)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger-bench: %v\n", err)
			return 2
		}
		*accessKey, *secretKey, principal = id, sec, arn
		account = strings.Split(arn, ":")[4]
	}
	u, err := url.Parse(*endpoint)
	if err != nil || u.Host == "" {
		fmt.Fprintf(stderr, "keyledger-bench: bad --endpoint %q\n", *endpoint)
		return 2
	}
	c := &benchClient{
		hc:     &fasthttp.HostClient{Addr: u.Host, MaxConns: *concurrency, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second},
		host:   u.Host,
		creds:  sigv4.Credentials{AccessKeyID: *accessKey, Secret: *secretKey},
		region: *region, account: account, principal: principal,
	}

	op, ok := benchOps[*opName]
	if !ok {
		fmt.Fprintf(stderr, "keyledger-bench: unknown --op %q\n", *opName)
		return 2
	}
	resp := fasthttp.AcquireResponse()
	for deadline := time.Now().Add(*wait); ; time.Sleep(100 * time.Millisecond) {
		err := c.call("CreateKey", []byte(op.createKey), resp)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(stderr, "keyledger-bench: CreateKey: %v\n", err)
			return 1
		}
	}
	var created struct{ KeyMetadata struct{ KeyId string } }
	if err := json.Unmarshal(resp.Body(), &created); err != nil {
		fmt.Fprintf(stderr, "keyledger-bench: CreateKey answer: %v\n", err)
		return 1
	}
	fasthttp.ReleaseResponse(resp)

	message := make([]byte, *size)
	_, _ = rand.Read(message)
	body, err := op.body(c, created.KeyMetadata.KeyId, message)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger-bench: preparing %s: %v\n", op.target, err)
		return 1
	}
	var received atomic.Int64
	for i := 0; i < *subscribers; i++ {
		go c.subscribe(*subscribeQuery, &received)
	}
	fmt.Fprintf(stdout, "%s (%s) of %d-byte messages, %d connections, %d audit subscribers, %s (after %s warm-up) against %s\n",
		op.target, *opName, *size, *concurrency, *subscribers, *duration, *warmup, *endpoint)
	res := drive(*concurrency, *warmup, *duration, func(resp *fasthttp.Response) error {
		return c.call(op.target, body, resp)
	})
	res.print(stdout)
	if *subscribers > 0 {
		fmt.Fprintf(stdout, "audit:      %d events delivered to %d subscribers\n", received.Load(), *subscribers)
	}
	if res.errors > 0 {
		fmt.Fprintf(stderr, "first error: %v\n", res.firstErr)
		return 1
	}
	return 0
}

// benchOp is one operation the bench can drive: the key it needs and the
// request body it sends (the same body every time).
type benchOp struct {
	target    string
	createKey string
	body      func(c *benchClient, keyID string, message []byte) ([]byte, error)
}

var benchOps = map[string]benchOp{
	"encrypt": {"Encrypt", `{"Description":"keyledger bench"}`, func(_ *benchClient, id string, msg []byte) ([]byte, error) {
		return json.Marshal(map[string]any{"KeyId": id, "Plaintext": msg})
	}},
	"generate-data-key": {"GenerateDataKey", `{"Description":"keyledger bench"}`, func(_ *benchClient, id string, _ []byte) ([]byte, error) {
		return json.Marshal(map[string]any{"KeyId": id, "KeySpec": "AES_256"})
	}},
	"sign-p256":      {"Sign", `{"KeySpec":"ECC_NIST_P256","KeyUsage":"SIGN_VERIFY"}`, signBody("ECDSA_SHA_256")},
	"sign-rsa2048":   {"Sign", `{"KeySpec":"RSA_2048","KeyUsage":"SIGN_VERIFY"}`, signBody("RSASSA_PSS_SHA_256")},
	"verify-p256":    {"Verify", `{"KeySpec":"ECC_NIST_P256","KeyUsage":"SIGN_VERIFY"}`, verifyBody("ECDSA_SHA_256")},
	"verify-rsa2048": {"Verify", `{"KeySpec":"RSA_2048","KeyUsage":"SIGN_VERIFY"}`, verifyBody("RSASSA_PSS_SHA_256")},
	// encrypt-policy is Encrypt under a realistic key policy (account
	// delegation, a conditional key-user statement naming the caller, an
	// explicit deny for someone else) plus the caller's IAM policy and a
	// grant on the key: authorization's cost on the hot path.
	"encrypt-policy": {"Encrypt", `{"Description":"keyledger bench with policies"}`, policyBody},
}

func policyBody(c *benchClient, id string, msg []byte) ([]byte, error) {
	acct := c.account
	pol := fmt.Sprintf(`{"Version":"2012-10-17","Id":"bench","Statement":[
 {"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%[1]s:root"},"Action":"kms:*","Resource":"*"},
 {"Sid":"Allow use of the key","Effect":"Allow","Principal":{"AWS":"%[2]s"},
  "Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*",
  "Condition":{"StringEquals":{"kms:EncryptionContext:app":"bench","kms:CallerAccount":"%[1]s"}}},
 {"Sid":"Deny deletion","Effect":"Deny","Principal":"*","Action":["kms:ScheduleKeyDeletion","kms:DisableKey"],"Resource":"*",
  "Condition":{"StringNotEquals":{"aws:PrincipalArn":"%[2]s"}}}]}`, acct, c.principal)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	put, _ := json.Marshal(map[string]any{"KeyId": id, "Policy": pol})
	if err := c.call("PutKeyPolicy", put, resp); err != nil {
		return nil, err
	}
	grant, _ := json.Marshal(map[string]any{"KeyId": id, "GranteePrincipal": "arn:aws:iam::" + acct + ":role/bench-app",
		"Operations": []string{"Encrypt", "Decrypt"}, "Constraints": map[string]any{"EncryptionContextSubset": map[string]string{"app": "bench"}}})
	if err := c.call("CreateGrant", grant, resp); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"KeyId": id, "Plaintext": msg, "EncryptionContext": map[string]string{"app": "bench"}})
}

func signBody(alg string) func(*benchClient, string, []byte) ([]byte, error) {
	return func(_ *benchClient, id string, msg []byte) ([]byte, error) {
		return json.Marshal(map[string]any{"KeyId": id, "Message": msg, "SigningAlgorithm": alg})
	}
}

// verifyBody signs the message once, then verifies that signature.
func verifyBody(alg string) func(*benchClient, string, []byte) ([]byte, error) {
	return func(c *benchClient, id string, msg []byte) ([]byte, error) {
		req, _ := signBody(alg)(c, id, msg)
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		if err := c.call("Sign", req, resp); err != nil {
			return nil, err
		}
		var out struct{ Signature []byte }
		if err := json.Unmarshal(resp.Body(), &out); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]any{"KeyId": id, "Message": msg, "Signature": out.Signature, "SigningAlgorithm": alg})
	}
}

type benchResult struct {
	latencies []time.Duration
	elapsed   time.Duration
	errors    int
	throttled int // of the errors, ThrottlingException
	firstErr  error
}

// drive runs fn on n workers; only requests that start after the warm-up
// and end before the deadline are measured.
func drive(n int, warmup, duration time.Duration, fn func(*fasthttp.Response) error) benchResult {
	return drivePaced(n, warmup, duration, nil, fn)
}

// drivePaced is drive where, unless tokens is nil, each request first
// takes a token (workers stop when tokens is closed).
func drivePaced(n int, warmup, duration time.Duration, tokens <-chan struct{}, fn func(*fasthttp.Response) error) benchResult {
	start := time.Now()
	measureFrom, measureTo := start.Add(warmup), start.Add(warmup+duration)
	var mu sync.Mutex
	var res benchResult
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseResponse(resp)
			lat := make([]time.Duration, 0, 1<<16)
			errs, throttled, firstErr := 0, 0, error(nil)
			for {
				if tokens != nil {
					if _, ok := <-tokens; !ok {
						break
					}
				}
				t0 := time.Now()
				if t0.After(measureTo) {
					break
				}
				err := fn(resp)
				t1 := time.Now()
				if t0.Before(measureFrom) || t1.After(measureTo) {
					continue
				}
				if err != nil {
					errs++
					if strings.Contains(err.Error(), "ThrottlingException") {
						throttled++
					}
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				lat = append(lat, t1.Sub(t0))
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.errors += errs
			res.throttled += throttled
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = duration
	slices.Sort(res.latencies)
	return res
}

func (r benchResult) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies)-1) * p)
	return r.latencies[i]
}

func (r benchResult) print(w io.Writer) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
	fmt.Fprintf(w, "requests:   %d ok, %d failed (%d throttled)\n", len(r.latencies), r.errors, r.throttled)
	fmt.Fprintf(w, "throughput: %.0f requests/s\n", float64(len(r.latencies))/r.elapsed.Seconds())
	fmt.Fprintf(w, "latency:    p50 %s  p99 %s  p99.9 %s  max %s\n", ms(r.pct(0.50)), ms(r.pct(0.99)), ms(r.pct(0.999)), ms(r.pct(1)))
}

// firstAccessKey reads the first user access key of a principals file
// (users by ARN), and the user's ARN. A fresh server writes the file as it
// starts, so a missing or unreadable file is retried for a while.
func firstAccessKey(path string) (id, secretKey, arn string, err error) {
	var d *principals.Directory
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if d, err = principals.Load(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return "", "", "", fmt.Errorf("reading %s: %v", path, err)
		}
	}
	for _, u := range d.Users() {
		for _, id := range u.AccessKeyIDs() {
			_, sec, _ := d.Lookup(id)
			return id, string(sec.Expose()), u.ARN, nil
		}
	}
	return "", "", "", fmt.Errorf("%s has no user access key", path)
}

// subscribe holds one live audit stream open and counts the events read.
func (c *benchClient) subscribe(query string, received *atomic.Int64) {
	now := time.Now().UTC()
	amzDate := now.Format(sigv4.AmzDateFormat)
	headers := []sigv4.Header{{Name: "host", Value: c.host}, {Name: "x-amz-date", Value: amzDate}}
	path := "/audit/events"
	if query != "" {
		path += "?" + query
	}
	req, err := http.NewRequest("GET", "http://"+c.host+path, nil)
	if err != nil {
		return
	}
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("Authorization", sigv4.Sign(c.creds, c.region, "kms", "GET", path, headers, nil, now))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	// Count events with as little client work as possible: the bench shares
	// the machine with the server, and it is the server's cost we measure.
	// Every event starts "id: " on a new line; carry 4 bytes over reads so
	// a marker split between two reads is still seen, but not twice.
	marker := []byte("\nid: ")
	buf := make([]byte, 256<<10)
	carry := 0
	for {
		n, err := resp.Body.Read(buf[carry:])
		chunk := buf[:carry+n]
		received.Add(int64(bytes.Count(chunk, marker) - bytes.Count(chunk[:carry], marker)))
		carry = copy(buf, chunk[max(0, len(chunk)-4):])
		if err != nil {
			return
		}
	}
}
