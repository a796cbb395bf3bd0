package tail_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/feed"
	"github.com/keyledger/keyledger/ledger/internal/ledgertest"
	"github.com/keyledger/keyledger/ledger/tail"
)

// emitted collects what Run emits.
type emitted struct {
	mu  sync.Mutex
	got []string
}

func (e *emitted) emit(raw []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, string(raw))
}

func (e *emitted) n() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.got)
}

func raws(recs ...event.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Raw))
	}
	return out
}

// Without a feed (a stopped deployment) Run emits the history that
// matches, from an index, a time or the start, up to Count, and returns.
func TestHistory(t *testing.T) {
	f := ledgertest.New(t, ledger.Config{}, 6) // 0 registers the writer; 1–5 Encrypt key k
	for _, tc := range []struct {
		name string
		req  tail.Request
		want []event.Record
	}{
		{"everything", tail.Request{From: -1}, f.Recs},
		{"an operation", tail.Request{From: -1, Operation: "Encrypt"}, f.Recs[1:]},
		{"from an index", tail.Request{From: 4}, f.Recs[4:]},
		{"since a time", tail.Request{From: -1, Since: ledgertest.At(3)}, f.Recs[3:]},
		{"from wins over since", tail.Request{From: 5, Since: ledgertest.At(1)}, f.Recs[5:]},
		{"a count", tail.Request{From: -1, Operation: "Encrypt", Count: 2}, f.Recs[1:3]},
		{"another key", tail.Request{From: -1, KeyID: "other"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e emitted
			req := tc.req
			req.Ledger, req.Emit = f.Open(), e.emit
			if err := tail.Run(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(raws(tc.want...), e.got); diff != "" {
				t.Fatalf("emitted (-want +got):\n%s", diff)
			}
		})
	}
}

// With a feed Run emits the history, then every live event once, in
// order, including those committed while the history was being read, and
// stops at Count.
func TestHistoryThenLive(t *testing.T) {
	f := ledgertest.New(t, ledger.Config{}, 4)
	fd := feed.New(f.NC, "")
	appendLive := func(i int) event.Record {
		r := f.Append(&event.Event{Time: ledgertest.At(i), Operation: "Encrypt", Account: "111122223333", KeyID: "k", Body: &event.APICall{}})
		if err := fd.Publish([]event.Record{r}); err != nil { // what the node does on commit
			t.Fatal(err)
		}
		return r
	}
	var e emitted
	done := make(chan error, 1)
	go func() {
		done <- tail.Run(context.Background(), tail.Request{Ledger: f.Open(), Feed: fd, From: 1, Operation: "Encrypt", Count: 8, Emit: e.emit})
	}()
	// Events committed (and announced) while Run starts: each must appear
	// once, whether the history or the feed delivers it.
	for i := 4; i < 7; i++ {
		appendLive(i)
	}
	deadline := time.After(10 * time.Second)
	for i := 7; ; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(raws(f.Recs[1:9]...), e.got); diff != "" {
				t.Fatalf("emitted (-want +got):\n%s", diff)
			}
			return
		case <-deadline:
			t.Fatalf("Run did not stop at its count; emitted %d", e.n())
		case <-time.After(20 * time.Millisecond):
			if len(f.Recs) < 12 {
				appendLive(i)
			}
		}
	}
}

// A live tail without a count runs until its context ends, then returns
// without error.
func TestLiveUntilCanceled(t *testing.T) {
	f := ledgertest.New(t, ledger.Config{}, 2)
	fd := feed.New(f.NC, "")
	ctx, cancel := context.WithCancel(context.Background())
	var e emitted
	done := make(chan error, 1)
	go func() { done <- tail.Run(ctx, tail.Request{Ledger: f.Open(), Feed: fd, From: -1, Emit: e.emit}) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if e.n() != 0 {
		t.Fatalf("a live tail without history emitted %d events before any was committed", e.n())
	}
}
