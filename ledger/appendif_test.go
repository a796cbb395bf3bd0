package ledger_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
)

// deletions counts the KeyDeleted events a ledger handed to OnCommit: the
// projection a condition reads.
type deletions struct{ n atomic.Int64 }

func (d *deletions) fold(rs []event.Record) {
	for _, r := range rs {
		if _, ok := r.Event.Body.(*event.KeyDeleted); ok {
			d.n.Add(1)
		}
	}
}

var errDone = errors.New("already deleted")

func (d *deletions) notYet() error {
	if d.n.Load() > 0 {
		return errDone
	}
	return nil
}

func startFolding(t *testing.T, srv *embedded.Server, cfg ledger.Config) *ledger.Ledger {
	t.Helper()
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l, err := ledger.Open(context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	head, err := l.Replay(context.Background(), chain.Head{}, func(r event.Record) error {
		cfg.OnCommit([]event.Record{r})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l.Start(head)
	t.Cleanup(l.Close)
	return l
}

// countDeleted counts KeyDeleted events in the stream.
func countDeleted(t *testing.T, l *ledger.Ledger) int {
	t.Helper()
	n := 0
	if _, err := l.Replay(context.Background(), chain.Head{}, func(r event.Record) error {
		if _, ok := r.Event.Body.(*event.KeyDeleted); ok {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAppendIfChecksAtItsPlace: many conditional appends race on one
// instance, among unconditional ones; each condition sees every event
// before its own place, so exactly one is stored.
func TestAppendIfChecksAtItsPlace(t *testing.T) {
	srv := startServer(t, t.TempDir())
	var d deletions
	l := startFolding(t, srv, ledger.Config{OnCommit: d.fold})
	ctx := context.Background()
	var wg sync.WaitGroup
	var stored, refused atomic.Int64
	for i := 0; i < 40; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := l.AppendIf(ctx, stateEvent("DeleteKey", &event.KeyDeleted{}), d.notYet)
			switch {
			case err == nil:
				stored.Add(1)
			case errors.Is(err, errDone):
				refused.Add(1)
			default:
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := l.Append(ctx, newEvent("Encrypt")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if stored.Load() != 1 || refused.Load() != 39 {
		t.Fatalf("%d conditional appends stored, %d refused; want 1 and 39", stored.Load(), refused.Load())
	}
	if n := countDeleted(t, l); n != 1 {
		t.Fatalf("%d KeyDeleted events in the stream, want 1", n)
	}
}

// TestAppendIfRefusedAfterAnotherWriter: an instance that has not yet
// folded another instance's event checks its condition against its stale
// head, where it holds; JetStream refuses the message (the stream moved on)
// and the event is not linked after the newcomer's: ErrConflict. Asked
// again, the condition sees the other instance's event.
func TestAppendIfRefusedAfterAnotherWriter(t *testing.T) {
	srv := startServer(t, t.TempDir())
	var da, db deletions
	a := startFolding(t, srv, ledger.Config{OnCommit: da.fold})
	b := startFolding(t, srv, ledger.Config{OnCommit: db.fold, FollowInterval: time.Hour}) // b never follows by itself
	ctx := context.Background()
	if _, err := a.AppendIf(ctx, stateEvent("DeleteKey", &event.KeyDeleted{}), da.notYet); err != nil {
		t.Fatal(err)
	}
	checked := 0
	_, err := b.AppendIf(ctx, stateEvent("DeleteKey", &event.KeyDeleted{}), func() error {
		checked++
		return db.notYet()
	})
	if !errors.Is(err, ledger.ErrConflict) || checked != 1 {
		t.Fatalf("stale instance's conditional append: err = %v after %d checks, want ErrConflict after 1", err, checked)
	}
	if _, err := b.AppendIf(ctx, stateEvent("DeleteKey", &event.KeyDeleted{}), db.notYet); !errors.Is(err, errDone) {
		t.Fatalf("asked again: err = %v, want the condition's error", err)
	}
	if n := countDeleted(t, a); n != 1 {
		t.Fatalf("%d KeyDeleted events in the stream, want 1", n)
	}
	// b writes on after a, unconditionally and conditionally.
	if _, err := b.Append(ctx, newEvent("Encrypt")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AppendIf(ctx, stateEvent("EnableKey", &event.KeyEnabled{}), func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := chain.Verify(ctx, a); err != nil {
		t.Fatalf("chain: %v", err)
	}
}
