package ledger_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
)

// TestRequestsSharingAContextLeaveNothingOnIt: the gateway hands requests
// that start within 100 ms one context (awsjson's requestDeadlines), which
// ends only at its deadline. Appends, changes and catch-ups made under it
// at once leave no child context or AfterFunc on it once they return.
func TestRequestsSharingAContextLeaveNothingOnIt(t *testing.T) {
	srv := startServer(t, t.TempDir())
	w := writer.Generate()
	l := openWriter(t, srv, w, nil)
	if _, err := l.Append(context.Background(), &event.Event{Time: time.Now(), Operation: "RegisterWriter",
		Body: &event.WriterRegistered{WriterID: w.ID(), PublicKey: w.PublicText(), RegisteredBy: w.ID()}}); err != nil {
		t.Fatal(err)
	}
	shared, cancel := context.WithDeadline(context.Background(), time.Now().Add(30*time.Second))
	defer cancel()
	children := func() int {
		v := reflect.ValueOf(shared).Elem().FieldByName("cancelCtx").FieldByName("children")
		if !v.IsValid() || v.Kind() != reflect.Map {
			t.Skipf("%T keeps no children map to count", shared)
		}
		return v.Len()
	}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			var err error
			switch i % 10 {
			case 0:
				for {
					_, err = l.AppendChange(shared, stateEvent("EnableKey", &event.KeyEnabled{}), l.Positions(), "key/shared")
					if !errors.Is(err, ledger.ErrConflict) {
						break
					}
				}
			case 1:
				err = l.Sync(shared)
			default:
				_, err = l.Append(shared, newEvent("Encrypt"))
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := children(); n != 0 {
		t.Fatalf("%d children left on the shared request context", n)
	}
}
