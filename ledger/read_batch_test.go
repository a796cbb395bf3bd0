package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
)

// readAheads counts goroutines reading a batch ahead.
func readAheads() int {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	return strings.Count(b.String(), "ledger.(*Ledger).fetch")
}

// TestReadAheadEndsWithTheRead: a reader that stops early (its callback
// fails while the next batch is being read ahead) leaves no read-ahead
// goroutine or subscription behind.
func TestReadAheadEndsWithTheRead(t *testing.T) {
	dir := t.TempDir()
	writeMessages(t, dir, 2100) // more than two direct-get batches
	srv := startServer(t, dir)
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l, err := ledger.Open(context.Background(), nc, ledger.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	subs := nc.NumSubscriptions()
	stop := errors.New("stop")
	for _, at := range []int{1, 1024, 1025, 2048} { // in a batch, at a batch's last and first message
		n := 0
		_, err := l.Replay(context.Background(), chain.Head{}, func(event.Record) error {
			if n++; n == at {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Fatalf("stop at %d: %v", at, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for readAheads() > 0 || nc.NumSubscriptions() > subs {
			if time.Now().After(deadline) {
				t.Fatalf("stop at %d: %d read-ahead goroutine(s), %d subscription(s) (%d before) still there", at, readAheads(), nc.NumSubscriptions(), subs)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// And a read to the end still reads every event.
	n := 0
	if _, err := l.Replay(context.Background(), chain.Head{}, func(event.Record) error { n++; return nil }); err != nil || n != 2100 {
		t.Fatalf("replay: %d events, %v", n, err)
	}
}

// TestBulkReadBatchesAreBounded: a read of the whole history asks for
// batches of at most 2 MiB, whatever the history's size (a batch is held
// up to three times in memory at once), and goes on batching after a batch
// the server ended at that bound: every message arrives by batch, none by
// a direct get of its own.
func TestBulkReadBatchesAreBounded(t *testing.T) {
	dir := t.TempDir()
	srv, err := embedded.Start(embedded.Options{DataDir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	l, _ := openLedger(t, srv, nil)
	l.Start(chain.Head{})
	// Concurrent appends share messages (group commits): about 6 MiB in a
	// few hundred messages, far under a batch's 1024 messages.
	const writers, each = 64, 250
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				e := newEvent("Encrypt")
				e.KeyID = strings.Repeat("k", 2000)
				if _, err := l.Append(context.Background(), e); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	l.Close()

	nc, err := srv.Connect("test-watch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var mu sync.Mutex
	var batches, singles []string
	sub, err := nc.Subscribe("$JS.API.DIRECT.GET."+ledger.DefaultStream, func(m *nats.Msg) {
		var req struct {
			Batch    int `json:"batch"`
			MaxBytes int `json:"max_bytes"`
		}
		_ = json.Unmarshal(m.Data, &req)
		mu.Lock()
		defer mu.Unlock()
		if req.Batch > 0 {
			batches = append(batches, string(m.Data))
			if req.MaxBytes <= 0 || req.MaxBytes > 2<<20 {
				t.Errorf("a batch of up to %d bytes: %s", req.MaxBytes, m.Data)
			}
		} else {
			singles = append(singles, string(m.Data))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	r, err := l.AuditAgainst(context.Background(), nil, nil)
	if err != nil || r.Head.Count != writers*each {
		t.Fatalf("audit: %d events, %v", r.Head.Count, err)
	}
	_ = sub.Unsubscribe()
	mu.Lock()
	defer mu.Unlock()
	if len(batches) < 3 || len(singles) > 0 {
		t.Fatalf("%d batches, %d single gets (%v): want the ~6 MiB read in several bounded batches and nothing else", len(batches), len(singles), singles)
	}
}
