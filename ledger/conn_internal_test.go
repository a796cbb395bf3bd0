package ledger

import (
	"context"
	"reflect"
	"runtime"
	"testing"
	"time"
)

// TestOnConnection: a context from onConnection ends when the connection
// in use when it was made is lost, not when a later one is; and ending it
// first leaves nothing registered with the connection.
func TestOnConnection(t *testing.T) {
	l := &Ledger{}
	first := newConnEpoch()
	l.connEpoch.Store(first)
	kept, cancelKept := l.onConnection(context.Background())
	defer cancelKept()
	ended, cancelEnded := l.onConnection(context.Background())
	cancelEnded()
	if ended.Err() == nil {
		t.Fatal("cancel did not end the context")
	}
	second := newConnEpoch()
	l.connEpoch.Store(second)
	later, cancelLater := l.onConnection(context.Background())
	defer cancelLater()
	first.lose()
	select {
	case <-kept.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("losing the connection did not end a context made on it")
	}
	if later.Err() != nil {
		t.Fatal("losing the old connection ended a context made on the new one")
	}
	second.lose()
	select {
	case <-later.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("losing the new connection did not end its context")
	}
	if _, cancel := (&Ledger{}).onConnection(context.Background()); cancel == nil {
		t.Fatal("no cancel without a watched connection")
	}
}

// TestOnConnectionLeavesNothingRegistered: thousands of publishes'
// contexts, ended by their cancel (after their deadline passed, or with
// their parent already ended), leave no registration on the
// connection's epoch and no goroutine; one still running is ended at
// once when the connection is lost.
func TestOnConnectionLeavesNothingRegistered(t *testing.T) {
	l := &Ledger{}
	e := newConnEpoch()
	l.connEpoch.Store(e)
	registered := func() int {
		children := reflect.ValueOf(e.lost).Elem().FieldByName("children")
		if !children.IsValid() || children.Kind() != reflect.Map {
			t.Skipf("%T keeps no children map to count", e.lost)
		}
		return children.Len()
	}
	goroutines := runtime.NumGoroutine()
	for i := range 5000 {
		parent, cancelParent := context.WithTimeout(context.Background(), time.Hour)
		if i%3 == 1 {
			cancelParent() // the publish's deadline passed first
		}
		ctx, cancel := l.onConnection(parent)
		if i%3 == 2 {
			cancelParent()
			<-ctx.Done()
		}
		cancel()
		cancelParent()
	}
	if n := registered(); n != 0 {
		t.Fatalf("%d registrations left on the connection after 5000 ended publishes", n)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		t.Fatalf("%d goroutines after 5000 publishes, %d before", n, goroutines)
	}
	inFlight, cancel := l.onConnection(context.Background())
	defer cancel()
	if registered() != 1 {
		t.Fatalf("a publish in flight: %d registrations, want 1", registered())
	}
	e.lose()
	select {
	case <-inFlight.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("losing the connection did not end the publish in flight")
	}
}
