package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
)

// heldStorage holds every commit until release is closed: a commit
// JetStream does not answer, as on a node cut off from its quorum.
type heldStorage struct {
	held, release chan struct{}
}

func (s *heldStorage) CheckWrite(int) error {
	select {
	case s.held <- struct{}{}:
	default:
	}
	<-s.release
	return nil
}

func (s *heldStorage) WriteFault() context.Context { return context.Background() }

// A commit unanswered for StallTimeout fails the requests queued behind
// it and those that come while it is in flight at once, with
// ErrUnavailable; the one in it waits for its outcome, and once a commit
// is acknowledged the ledger takes requests again.
func TestStalledCommitFailsOthersAtOnce(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	st := &heldStorage{held: make(chan struct{}, 1), release: make(chan struct{})}
	l, err := ledger.Open(context.Background(), nc, ledger.Config{Storage: st, StallTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	head, err := l.Replay(context.Background(), chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	l.Start(head)
	t.Cleanup(l.Close)
	ctx := context.Background()

	inFlight := make(chan error, 1)
	go func() { _, err := l.Append(ctx, newEvent("Encrypt")); inFlight <- err }()
	<-st.held // the writer took it and waits
	queued := make(chan error, 1)
	go func() { _, err := l.Append(ctx, newEvent("Encrypt")); queued <- err }()
	select {
	case err := <-queued:
		if !errors.Is(err, ledger.ErrUnavailable) {
			t.Fatalf("queued behind the stalled commit: %v, want ErrUnavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a request queued behind a stalled commit still waits after 5 s")
	}
	if !l.Stalled() {
		t.Fatal("Stalled is false while a commit goes unanswered")
	}
	began := time.Now()
	if _, err := l.Append(ctx, newEvent("Encrypt")); !errors.Is(err, ledger.ErrUnavailable) || time.Since(began) > time.Second {
		t.Fatalf("while stalled: %v after %v, want ErrUnavailable at once", err, time.Since(began))
	}
	select {
	case err := <-inFlight:
		t.Fatalf("the request in the stalled commit was answered before its outcome: %v", err)
	default:
	}

	close(st.release)
	if err := <-inFlight; err != nil {
		t.Fatalf("the stalled commit, once answered: %v", err)
	}
	if l.Stalled() {
		t.Fatal("still stalled after the commit was answered")
	}
	if _, err := l.Append(ctx, newEvent("Encrypt")); err != nil {
		t.Fatalf("after the stall: %v", err)
	}
}

// Reachable ends a stall when the stream's leader answers with a quorum
// in touch: an instance whose /readyz failed gets no request whose commit
// could end it. The commit in flight still waits for its own outcome.
func TestReachableEndsStall(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	st := &heldStorage{held: make(chan struct{}, 1), release: make(chan struct{})}
	l, err := ledger.Open(context.Background(), nc, ledger.Config{Storage: st, StallTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	head, err := l.Replay(context.Background(), chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	l.Start(head)
	t.Cleanup(l.Close)
	ctx := context.Background()

	inFlight := make(chan error, 1)
	go func() { _, err := l.Append(ctx, newEvent("Encrypt")); inFlight <- err }()
	<-st.held
	for deadline := time.Now().Add(5 * time.Second); !l.Stalled(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not stalled 5 s into an unanswered commit")
		}
	}
	want, err := l.LastStreamSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.Reachable(ctx)
	if err != nil || got != want {
		t.Fatalf("Reachable = %d, %v; want %d (LastStreamSeq)", got, err, want)
	}
	if l.Stalled() {
		t.Fatal("still stalled after the stream's leader answered")
	}
	select {
	case err := <-inFlight:
		t.Fatalf("the request in the stalled commit was answered before its outcome: %v", err)
	default:
	}
	close(st.release)
	if err := <-inFlight; err != nil {
		t.Fatalf("the stalled commit, once answered: %v", err)
	}
}
