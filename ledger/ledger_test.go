package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
)

func startServer(t *testing.T, dir string) *embedded.Server {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

func openLedger(t *testing.T, srv *embedded.Server, onCommit func([]event.Record)) (*ledger.Ledger, chain.Head) {
	t.Helper()
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l, err := ledger.Open(context.Background(), nc, ledger.Config{OnCommit: onCommit})
	if err != nil {
		t.Fatal(err)
	}
	head, err := l.Replay(context.Background(), chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return l, head
}

// stateEvent is an event that changes key state.
func stateEvent(op string, body event.Body) *event.Event {
	return &event.Event{Time: time.Now(), Operation: op, Account: "111122223333", KeyID: "k", Body: body}
}

func newEvent(op string) *event.Event {
	return &event.Event{Time: time.Now(), Operation: op, Account: "111122223333", Body: &event.APICall{}}
}

func TestConcurrentAppendsFormOneChain(t *testing.T) {
	srv := startServer(t, t.TempDir())
	var mu sync.Mutex
	var committed []event.Record
	l, head := openLedger(t, srv, func(rs []event.Record) {
		mu.Lock()
		committed = append(committed, rs...)
		mu.Unlock()
	})
	l.Start(head)
	const n = 500
	var wg sync.WaitGroup
	recs := make([]event.Record, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := l.Append(context.Background(), newEvent("Encrypt"))
			if err != nil {
				t.Error(err)
			}
			recs[i] = r
		}(i)
	}
	wg.Wait()
	l.Close()

	seen := map[uint64]bool{}
	for _, r := range recs {
		if seen[r.Event.Index] {
			t.Fatalf("index %d given twice", r.Event.Index)
		}
		seen[r.Event.Index] = true
		if r.Hash != event.Of(r.Raw) {
			t.Fatal("record hash does not match its bytes")
		}
	}
	if len(committed) != n {
		t.Fatalf("OnCommit saw %d records, want %d", len(committed), n)
	}
	for i, r := range committed {
		if r.Event.Index != uint64(i) {
			t.Fatalf("OnCommit out of order at %d: index %d", i, r.Event.Index)
		}
	}
	msgs := committed[n-1].Seq
	if msgs >= n {
		t.Fatalf("no group commit happened: %d messages for %d events", msgs, n)
	}
	t.Logf("%d events in %d messages", n, msgs)

	// A fresh reader replays the same chain.
	l2, head2 := openLedger(t, srv, nil)
	if head2.Count != n || head2.Hash != committed[n-1].Hash {
		t.Fatalf("replayed head %+v", head2)
	}
	vhead, err := chain.Verify(context.Background(), l2)
	if err != nil || vhead != head2 {
		t.Fatalf("Verify = %+v, %v", vhead, err)
	}
}

func TestSecondWriterIsRejected(t *testing.T) {
	srv := startServer(t, t.TempDir())
	var mu sync.Mutex
	var seenByA []event.Record
	a, head := openLedger(t, srv, func(rs []event.Record) {
		mu.Lock()
		seenByA = append(seenByA, rs...)
		mu.Unlock()
	})
	b, _ := openLedger(t, srv, nil)
	a.Start(head)
	b.Start(head)
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	if _, err := a.Append(ctx, stateEvent("EnableKey", &event.KeyEnabled{})); err != nil {
		t.Fatal(err)
	}
	// b still believes the stream is empty: JetStream refuses its append.
	if _, err := b.Append(ctx, stateEvent("DisableKey", &event.KeyDisabled{})); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("second writer: err = %v, want ErrConflict", err)
	}
	// b has caught up from the stream and can now append, linked after a's.
	rb, err := b.Append(ctx, stateEvent("DisableKey", &event.KeyDisabled{}))
	if err != nil {
		t.Fatal(err)
	}
	if rb.Event.Index != 1 {
		t.Fatalf("b's event index %d, want 1", rb.Event.Index)
	}
	// a is now stale: rejected, then catches up and sees b's event as truth.
	if _, err := a.Append(ctx, stateEvent("EnableKey", &event.KeyEnabled{})); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("stale writer: err = %v", err)
	}
	mu.Lock()
	if len(seenByA) != 2 || seenByA[1].Hash != rb.Hash {
		t.Fatalf("a did not fold b's event: %d records", len(seenByA))
	}
	mu.Unlock()
	// A stale writer's record that changes no key state is not refused: it
	// is linked after what the other writer appended.
	ra, err := a.Append(ctx, newEvent("Decrypt"))
	if err != nil {
		t.Fatal(err)
	}
	rb, err = b.Append(ctx, newEvent("Encrypt"))
	if err != nil {
		t.Fatalf("stale writer's APICall record: %v", err)
	}
	if rb.Event.Index != ra.Event.Index+1 || rb.Event.Prev != ra.Hash {
		t.Fatalf("b's record is index %d after %s, want index %d after a's %s", rb.Event.Index, rb.Event.Prev, ra.Event.Index+1, ra.Hash)
	}
	if _, err := chain.Verify(ctx, a); err != nil {
		t.Fatalf("chain forked: %v", err)
	}
}

func TestAcknowledgedEventsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	srv, err := embedded.Start(embedded.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(context.Background(), nc, ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	head, err := l.Replay(context.Background(), chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	l.Start(head)
	var last event.Record
	for i := 0; i < 10; i++ {
		if last, err = l.Append(context.Background(), newEvent("Encrypt")); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	nc.Close()
	srv.Shutdown()

	srv2 := startServer(t, dir)
	_, head2 := openLedger(t, srv2, nil)
	if head2.Count != 10 || head2.Hash != last.Hash {
		t.Fatalf("after restart head = %+v", head2)
	}
}

func TestMaterialDestroy(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc, _ := srv.Connect("test")
	defer nc.Close()
	ctx := context.Background()
	s, err := material.Open(ctx, nc, material.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "m1", []byte("wrapped")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "m1", []byte("again")); err == nil {
		t.Fatal("overwrote existing material")
	}
	got, err := s.Get(ctx, "m1")
	if err != nil || string(got) != "wrapped" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if err := s.Destroy(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "m1"); !errors.Is(err, material.ErrNotFound) {
		t.Fatalf("after destroy: %v", err)
	}
	if err := s.Destroy(ctx, "m1"); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
}

func TestBatchesStayWithinMaxBytes(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const maxBytes = 1500
	l, err := ledger.Open(context.Background(), nc, ledger.Config{MaxBatchBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	head, _ := l.Replay(context.Background(), chain.Head{}, func(event.Record) error { return nil })
	l.Start(head)
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.Append(context.Background(), newEvent("Encrypt")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	l.Close()
	msgs, multi := 0, 0
	err = l.Messages(context.Background(), func(m chain.Message) error {
		data := m.Data
		msgs++
		if len(data) > maxBytes {
			t.Errorf("message of %d bytes exceeds %d", len(data), maxBytes)
		}
		if lines, _ := event.SplitBatch(data); len(lines) > 1 {
			multi++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if head, err := chain.Verify(context.Background(), l); err != nil || head.Count != 60 {
		t.Fatalf("verify: %+v %v", head, err)
	}
	if multi == 0 {
		t.Fatal("no message grouped several events")
	}
	t.Logf("60 events in %d messages", msgs)
}

func TestStreamDeniesDeleteAndPurge(t *testing.T) {
	srv := startServer(t, t.TempDir())
	l, head := openLedger(t, srv, nil)
	l.Start(head)
	if _, err := l.Append(context.Background(), newEvent("CreateKey")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	nc, _ := srv.Connect("attacker")
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	s, err := js.Stream(ctx, "KEYLEDGER")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, 1); err == nil {
		t.Fatal("a ledger message was deleted")
	}
	if err := s.Purge(ctx); err == nil {
		t.Fatal("the ledger stream was purged")
	}
	if info, _ := s.Info(ctx); info.State.Msgs != 1 {
		t.Fatalf("%d messages left", info.State.Msgs)
	}
}
