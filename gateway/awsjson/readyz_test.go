package awsjson_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keyledger/keyledger/gateway/awsjson"
)

// lockedLog is a log destination safe for the server's goroutines.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestReadyzLogsASpellOnce: a load balancer polling a /readyz that stays
// 503 (a partition, a full disk) gets a log line for the first refusal,
// not one per poll, and one when the instance is ready again; every
// answer still says what holds.
func TestReadyzLogsASpellOnce(t *testing.T) {
	var logs lockedLog
	var down atomic.Bool
	down.Store(true)
	srv := awsjson.New(nil, awsjson.Options{Region: "us-east-1", Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Ready: func(context.Context) error {
			if down.Load() {
				return errors.New("the ledger is unreachable: cut off")
			}
			return nil
		}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	poll := func(want int, n int) {
		t.Helper()
		for range n {
			resp, err := http.Get("http://" + ln.Addr().String() + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("/readyz = %d, want %d", resp.StatusCode, want)
			}
		}
	}
	poll(503, 50)
	if n := strings.Count(logs.String(), "not ready"); n != 1 {
		t.Fatalf("50 refusals logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "cut off") {
		t.Fatalf("the reason is not in the log:\n%s", logs.String())
	}
	down.Store(false)
	poll(200, 5)
	if n := strings.Count(logs.String(), "ready again"); n != 1 {
		t.Fatalf("'ready again' logged %d times, want once:\n%s", n, logs.String())
	}
	down.Store(true)
	poll(503, 3)
	if n := strings.Count(logs.String(), "msg=\"not ready\""); n != 2 {
		t.Fatalf("a new spell was logged %d times in all, want 2:\n%s", n, logs.String())
	}
}
