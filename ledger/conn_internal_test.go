package ledger

import (
	"context"
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
