package tests

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/keyledger/keyledger/gateway/metrics"
	"github.com/keyledger/keyledger/gateway/throttle"
)

// scrape GETs the metrics endpoint and parses it with Prometheus's own
// text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("metrics status %d: %s", resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the scrape: %v", err)
	}
	return fams
}

// value is the sample of family name whose labels include want (counter,
// gauge, or a histogram's count); -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

func TestMetricsScrape(t *testing.T) {
	m := metrics.New()
	lim := throttle.New(throttle.Config{Region: testRegion, Account: func(a string) map[string]float64 {
		return map[string]float64{"ListKeys": 1}
	}})
	in := start(t, withMetrics(m), withThrottle(lim))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := m.Serve(ln)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	url := "http://" + ln.Addr().String() + "/metrics"
	ctx := context.Background()

	key := in.createKey("metrics")
	before := scrape(t, url)
	for range 3 {
		if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: make([]byte, 64)})
	wantCode(t, err, "InvalidCiphertextException")
	_, err = in.as("alice").Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x")})
	wantCode(t, err, "AccessDeniedException")
	throttled := 0
	for range 5 { // ListKeys at 1/s: the second at once is throttled
		if _, err := in.kms.ListKeys(ctx, &kms.ListKeysInput{}); err != nil {
			wantCode(t, err, "ThrottlingException")
			throttled++
		}
	}
	_, closeSSE := openSSE(t, in, "admin", "", -1)
	defer closeSSE()
	if _, err := in.node.Checkpointer.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	after := scrape(t, url)

	moved := func(name string, labels map[string]string, atLeast float64) {
		t.Helper()
		b, a := max(value(before, name, labels), 0), value(after, name, labels)
		if a-b < atLeast {
			t.Errorf("%s%v went %v → %v, want a rise of ≥ %v", name, labels, b, a, atLeast)
		}
	}
	moved("keyledger_requests_total", map[string]string{"operation": "Encrypt", "code": "OK"}, 3)
	moved("keyledger_requests_total", map[string]string{"operation": "Decrypt", "code": "InvalidCiphertextException"}, 1)
	moved("keyledger_requests_total", map[string]string{"operation": "Encrypt", "code": "AccessDeniedException"}, 1)
	moved("keyledger_requests_total", map[string]string{"operation": "ListKeys", "code": "ThrottlingException"}, float64(throttled))
	moved("keyledger_throttled_requests_total", map[string]string{"family": "ListKeys"}, float64(throttled))
	moved("keyledger_request_duration_seconds", map[string]string{"operation": "Encrypt"}, 4)
	moved("keyledger_ledger_commit_events", nil, 1)
	moved("keyledger_ledger_append_duration_seconds", nil, 5) // 3 Encrypts and 2 refusals
	moved("keyledger_ledger_verified_events", nil, 5)
	moved("keyledger_material_cache_hits_total", nil, 3)
	if throttled == 0 {
		t.Error("5 ListKeys at once under a quota of 1/s were never throttled")
	}
	if v := value(after, "keyledger_audit_sse_subscribers", nil); v != 1 {
		t.Errorf("SSE subscribers = %v, want 1", v)
	}
	// The lag is of the moment: a throttle summary committed just before
	// the scrape may not be folded yet. It must come back to 0.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		v := value(scrape(t, url), "keyledger_projection_lag_messages", nil)
		if v == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("projection lag = %v for 10 s, want 0", v)
			break
		}
	}
	if v := value(before, "keyledger_checkpoint_age_seconds", nil); !math.IsNaN(v) {
		t.Errorf("checkpoint age before any checkpoint = %v, want NaN", v)
	}
	if v := value(after, "keyledger_checkpoint_age_seconds", nil); math.IsNaN(v) || v < 0 || v > time.Minute.Seconds() {
		t.Errorf("checkpoint age after a checkpoint = %v", v)
	}
	// Before the first checkpoint every event is uncovered; after it only
	// the throttle's summary event (recorded every 50 ms) may be.
	if b, a := value(before, "keyledger_checkpoint_uncovered_events", nil), value(after, "keyledger_checkpoint_uncovered_events", nil); b < 2 || a < 0 || a > 1 {
		t.Errorf("events not covered by a checkpoint: %v before the first, %v after, want ≥ 2 then ≤ 1", b, a)
	}
	for _, name := range []string{"keyledger_ledger_quarantined_messages_total", "keyledger_audit_sse_dropped_events_total",
		"keyledger_audit_feed_overflows_total", "keyledger_audit_feed_publish_errors_total", "keyledger_material_cache_misses_total",
		"go_goroutines", "process_resident_memory_bytes"} {
		if value(after, name, nil) < 0 {
			t.Errorf("%s missing from the scrape", name)
		}
	}
}

// TestMetricsOnlyOnLoopback: serve refuses a non-loopback --metrics-listen
// without --metrics-insecure-http, and a malformed --quota, --quotas or
// fair share size, saying why.
func TestMetricsOnlyOnLoopback(t *testing.T) {
	code, out := cli(t, "serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--metrics-listen", "0.0.0.0:0")
	if code != 2 || !strings.Contains(out, "refusing to serve metrics on 0.0.0.0:0") || !strings.Contains(out, "--metrics-insecure-http") {
		t.Fatalf("exit %d: %s", code, out)
	}
	code, out = cli(t, "serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--quota", "cryptographic-symetric=5")
	if code != 2 || !strings.Contains(out, "known family") {
		t.Fatalf("exit %d: %s", code, out)
	}
	code, out = cli(t, "serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--quotas", "AWS")
	if code != 2 || !strings.Contains(out, "want none or aws") {
		t.Fatalf("--quotas AWS: exit %d: %s", code, out)
	}
	code, out = cli(t, "serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--fair-share-slots", "-1")
	if code != 2 || !strings.Contains(out, "--fair-share-slots") {
		t.Fatalf("--fair-share-slots -1: exit %d: %s", code, out)
	}
}
