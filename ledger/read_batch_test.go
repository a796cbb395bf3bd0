package ledger_test

import (
	"context"
	"errors"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
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
