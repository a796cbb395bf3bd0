package tests

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyledger/keyledger/gateway/awsjson"
	"github.com/keyledger/keyledger/gateway/transport"
)

// probe GETs an unauthenticated health endpoint and returns status and body.
func probe(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestHealthAndReadiness: /healthz and /readyz need no credentials and say
// nothing but ok/ready; when the ledger's NATS server goes away the
// instance is alive but not ready.
func TestHealthAndReadiness(t *testing.T) {
	port := freePort(t)
	ns := startNATS(t, t.TempDir(), port)
	in := start(t, withNATS("nats://127.0.0.1:"+strconv.Itoa(port)))
	in.createKey("health")

	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
		status, body := probe(t, in.endpoint+path)
		if status != 200 || body != want {
			t.Fatalf("%s = %d %q, want 200 %q", path, status, body, want)
		}
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	if status, body := probe(t, in.endpoint+"/readyz"); status != 503 || body != "not ready\n" {
		t.Fatalf("/readyz with the ledger down = %d %q", status, body)
	}
	if status, _ := probe(t, in.endpoint+"/healthz"); status != 200 {
		t.Fatalf("/healthz with the ledger down = %d", status)
	}
}

// TestNotReadyWhileStarting: while the ledger replays, serve answers on its
// address through the start-up responder (/healthz 200, /readyz 503, KMS
// requests ServiceUnavailableException, which SDKs retry); then the
// instance takes over the same socket and is ready.
func TestNotReadyWhileStarting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sw := transport.NewSwitch(ln)
	t.Cleanup(func() { sw.Close() })
	starting := awsjson.ServeStarting(sw.Next(), awsjson.Limits{})
	endpoint := "http://" + ln.Addr().String()
	notReady := func() {
		t.Helper()
		if status, _ := probe(t, endpoint+"/healthz"); status != 200 {
			t.Fatalf("/healthz while starting = %d", status)
		}
		if status, body := probe(t, endpoint+"/readyz"); status != 503 || body != "not ready\n" {
			t.Fatalf("/readyz while starting = %d %q", status, body)
		}
		_, err := newClient(endpoint, testCredentials["admin"][0], testCredentials["admin"][1]).ListKeys(context.Background(), &kms.ListKeysInput{})
		wantCode(t, err, "ServiceUnavailableException")
	}
	notReady()

	// The instance replays, then (as serve does) stops the responder and
	// serves on the same socket.
	in := start(t, func(i *instance) {
		i.listen = func() net.Listener {
			notReady() // replayed, not yet serving
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := starting.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			return sw.Next()
		}
	})
	if in.endpoint != endpoint {
		t.Fatalf("served on %s, not %s", in.endpoint, endpoint)
	}
	if status, body := probe(t, endpoint+"/readyz"); status != 200 || body != "ready\n" {
		t.Fatalf("/readyz after start = %d %q", status, body)
	}
	if _, err := in.kms.ListKeys(context.Background(), &kms.ListKeysInput{}); err != nil {
		t.Fatal(err)
	}
}
