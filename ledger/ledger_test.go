package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/ledger/writer"
)

func startServer(t testing.TB, dir string) *embedded.Server {
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

// openWriter opens the ledger with writer key w, replayed and started.
func openWriter(t testing.TB, srv *embedded.Server, w *writer.Key, onCommit func([]event.Record)) *ledger.Ledger {
	t.Helper()
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l, err := ledger.Open(context.Background(), nc, ledger.Config{Writer: w, OnCommit: onCommit})
	if err != nil {
		t.Fatal(err)
	}
	head, err := l.Replay(context.Background(), chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	l.Start(head)
	t.Cleanup(l.Close)
	return l
}

// twoWriters starts two instances with their own writer keys, the second
// registered by the first, both folded up to the registration.
func twoWriters(t *testing.T, srv *embedded.Server) (a, b *ledger.Ledger) {
	t.Helper()
	wa, wb := writer.Generate(), writer.Generate()
	a = openWriter(t, srv, wa, nil)
	ctx := context.Background()
	if _, err := a.Append(ctx, &event.Event{Time: time.Now(), Operation: "RegisterWriter",
		Body: &event.WriterRegistered{WriterID: wa.ID(), PublicKey: wa.PublicText(), RegisteredBy: wa.ID()}}); err != nil {
		t.Fatal(err)
	}
	reg, err := a.Append(ctx, &event.Event{Time: time.Now(), Operation: "RegisterWriter",
		Body: &event.WriterRegistered{WriterID: wb.ID(), PublicKey: wb.PublicText(), RegisteredBy: wa.ID()}})
	if err != nil {
		t.Fatal(err)
	}
	b = openWriter(t, srv, wb, nil)
	if !b.Registered(wb.ID()) || b.Head().Seq != reg.Seq {
		t.Fatalf("b does not see its registration: head %+v", b.Head())
	}
	return a, b
}

// TestChangesConflictAcrossInstances: a change validated against a state
// another instance has changed since is refused (ErrConflict), folded
// meanwhile so the retry validates against it; a change on an unrelated
// key is not; a change on several partitions is stored whole or not at
// all.
func TestChangesConflictAcrossInstances(t *testing.T) {
	srv := startServer(t, t.TempDir())
	a, b := twoWriters(t, srv)
	ctx := context.Background()
	pa, pb := a.Positions(), b.Positions()
	ra, err := a.AppendChange(ctx, stateEvent("EnableKey", &event.KeyEnabled{}), pa, "key/k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AppendChange(ctx, stateEvent("DisableKey", &event.KeyDisabled{}), pb, "key/k"); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("a change validated before another instance's: err = %v, want ErrConflict", err)
	}
	// b folded a's change before answering: validated again, it goes in,
	// linked after a's on the key's control chain.
	if b.Head().Seq < ra.Seq {
		t.Fatalf("b's fold is at %d, a's change at %d", b.Head().Seq, ra.Seq)
	}
	rb, err := b.AppendChange(ctx, stateEvent("DisableKey", &event.KeyDisabled{}), b.Positions(), "key/k")
	if err != nil {
		t.Fatal(err)
	}
	if rb.Event.Chain != ra.Event.Chain || rb.Event.Index != ra.Event.Index+1 || rb.Event.Prev != ra.Hash || rb.Event.Chain != chain.ControlChainOf("key/k") {
		t.Fatalf("b's change %+v does not follow a's %+v on the key's chain", rb.Event, ra.Event)
	}
	// A change on an unrelated key's partition is not held up by them.
	other := "key/other"
	for chain.Partition(other) == chain.Partition("key/k") {
		other += "x"
	}
	stale := pa
	if _, err := a.AppendChange(ctx, stateEvent("EnableKey", &event.KeyEnabled{}), stale, other); err != nil {
		t.Fatalf("a change on an unrelated key: %v", err)
	}
	// A change that depends on two partitions (an alias of a key) loses to
	// a change on either, and nothing of it is stored.
	alias := "alias/111122223333/app"
	for chain.Partition(alias) == chain.Partition("key/k") || chain.Partition(alias) == chain.Partition(other) {
		alias += "x"
	}
	pb = b.Positions()
	if _, err := a.AppendChange(ctx, stateEvent("ScheduleKeyDeletion", &event.KeyDeletionScheduled{}), a.Positions(), "key/k"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AppendChange(ctx, stateEvent("CreateAlias", &event.AliasCreated{AliasName: "alias/app"}), pb, alias, "key/k"); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("an alias for a key changed meanwhile: err = %v", err)
	}
	if got, want := b.Head(), a.Head(); got != want {
		t.Fatalf("after the lost change b is at %+v, want a's %+v: nothing of b's change is stored", got, want)
	}
	rc, err := b.AppendChange(ctx, stateEvent("CreateAlias", &event.AliasCreated{AliasName: "alias/app"}), b.Positions(), alias, "key/k")
	if err != nil {
		t.Fatal(err)
	}
	if rc.Event.Chain != chain.ControlChainOf(alias) {
		t.Fatalf("the alias change is on %s, want its own chain %s", rc.Event.Chain, chain.ControlChainOf(alias))
	}
	// Its fence on the key's chain is there, right after it, and a's next
	// change on the key, validated before it, loses.
	if _, err := a.AppendChange(ctx, stateEvent("CancelKeyDeletion", &event.KeyDeletionCanceled{}), pa, "key/k"); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("err = %v", err)
	}
	var fence *event.Fence
	_, err = a.Replay(ctx, chain.Head{}, func(r event.Record) error {
		if f, ok := r.Event.Body.(*event.Fence); ok && r.Seq == rc.Seq+1 {
			fence = f
			if r.Event.Chain != chain.ControlChainOf("key/k") {
				t.Errorf("fence on %s", r.Event.Chain)
			}
		}
		return nil
	})
	if err != nil || fence == nil || fence.Change != rc.Hash.String() || fence.Chain != rc.Event.Chain {
		t.Fatalf("fence %+v, %v", fence, err)
	}
	for _, l := range []*ledger.Ledger{a, b} {
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if rep, err := chain.Audit(ctx, l); err != nil || len(rep.Quarantined) > 0 || l.Quarantined() > 0 {
			t.Fatalf("audit: %v %v", err, rep.Quarantined)
		}
	}
	if a.Head() != b.Head() {
		t.Fatalf("the instances disagree: %+v and %+v", a.Head(), b.Head())
	}
}

// TestSameWriterKeyCannotFork: two processes holding one writer key write
// its data chain at once. JetStream refuses whichever publishes after the
// other took the place (expected-last-subject-sequence); the loser folds
// the winner's message and links after it, or after too many lost races
// fails its batch (ErrConflict: nothing stored). Nothing forks, nothing is
// quarantined, every acknowledged event is in the ledger once, and the
// instances say in their logs that a copy of their key is writing.
func TestSameWriterKeyCannotFork(t *testing.T) {
	srv := startServer(t, t.TempDir())
	w := writer.Generate()
	var logs syncLog
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	a := openWriterLogged(t, srv, w, logger)
	ctx := context.Background()
	if _, err := a.Append(ctx, &event.Event{Time: time.Now(), Operation: "RegisterWriter",
		Body: &event.WriterRegistered{WriterID: w.ID(), PublicKey: w.PublicText(), RegisteredBy: w.ID()}}); err != nil {
		t.Fatal(err)
	}
	b := openWriterLogged(t, srv, w, logger)
	var mu sync.Mutex
	acked := map[event.Hash]bool{}
	var wg sync.WaitGroup
	for _, l := range []*ledger.Ledger{a, b} {
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 25 {
					r, err := l.Append(ctx, newEvent("Encrypt"))
					if errors.Is(err, ledger.ErrConflict) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					acked[r.Hash] = true
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	n := len(acked)
	rep, err := chain.AuditFold(ctx, a, func(r event.Record) {
		delete(acked, r.Hash)
	})
	if err != nil || len(rep.Quarantined) > 0 {
		t.Fatalf("audit: %v %v", err, rep.Quarantined)
	}
	if len(acked) > 0 {
		t.Fatalf("%d acknowledged events are not in the ledger", len(acked))
	}
	if c := rep.Chains[chain.DataChain(w.ID())]; c.Count != uint64(n)+1 {
		t.Fatalf("the writer's chain holds %d events, %d were acknowledged", c.Count, n+1)
	}
	// Whichever lost a race says so, once a minute at most: one or two
	// alarms in the two instances' logs.
	if got := logs.String(); strings.Count(got, "ALARM: another process writes with this instance's writer key") == 0 ||
		strings.Count(got, "ALARM") > 2 {
		t.Fatalf("want one alarm from each instance that lost a race, no more:\n%s", got)
	}
}

// syncLog is a log destination safe for concurrent writers.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// openWriterLogged is openWriter logging to logger.
func openWriterLogged(t *testing.T, srv *embedded.Server, w *writer.Key, logger *slog.Logger) *ledger.Ledger {
	t.Helper()
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l, err := ledger.Open(context.Background(), nc, ledger.Config{Writer: w, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	head, err := l.Replay(context.Background(), chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	l.Start(head)
	t.Cleanup(l.Close)
	return l
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
