package ledger_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
)

// A change in flight when the ledger closes settles once: either the
// close fails it (ErrClosed) or it is folded, never both (a second close
// of its done channel would panic the process).
func TestChangeInFlightAtClose(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	w := writer.Generate()
	for i := range 40 {
		l, err := ledger.Open(context.Background(), nc, ledger.Config{Writer: w})
		if err != nil {
			t.Fatal(err)
		}
		head, err := l.Replay(context.Background(), chain.Head{}, func(event.Record) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		l.Start(head)
		if i == 0 {
			if _, err := l.Append(context.Background(), &event.Event{Time: time.Now(), Operation: "RegisterWriter",
				Body: &event.WriterRegistered{WriterID: w.ID(), PublicKey: w.PublicText(), RegisteredBy: w.ID()}}); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					_, err := l.AppendChange(context.Background(), stateEvent("EnableKey", &event.KeyEnabled{}), l.Positions(), "key/close")
					if errors.Is(err, ledger.ErrClosed) {
						return
					}
					if err != nil && !errors.Is(err, ledger.ErrConflict) {
						t.Errorf("iteration %d: %v", i, err)
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
		l.Close()
		wg.Wait()
	}
}
