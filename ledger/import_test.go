package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
)

// TestImport copies a ledger's events into an empty stream: the copy
// verifies with the same head hash, takes new appends after it, and a
// second import, or one of events that do not link, is refused.
func TestImport(t *testing.T) {
	ctx := context.Background()
	src, h := openLedger(t, startServer(t, t.TempDir()), nil)
	src.Start(h)
	defer src.Close()
	for i := 0; i < 5; i++ {
		if _, err := src.Append(ctx, newEvent("Encrypt")); err != nil {
			t.Fatal(err)
		}
	}
	var events [][]byte
	want, err := src.Replay(ctx, chain.Head{}, func(r event.Record) error {
		events = append(events, bytes.Clone(r.Raw))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	srv := startServer(t, t.TempDir())
	nc, err := srv.Connect("import")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	dst, err := ledger.Open(ctx, nc, ledger.Config{MaxBatchEvents: 2})
	if err != nil {
		t.Fatal(err)
	}
	head, err := dst.Import(ctx, events)
	if err != nil {
		t.Fatal(err)
	}
	got, err := chain.Verify(ctx, dst)
	if err != nil || got.Hash != want.Hash || got.Count != want.Count || got != head {
		t.Fatalf("imported chain: head %+v (Import said %+v), err %v; want hash %s count %d", got, head, err, want.Hash, want.Count)
	}
	if _, err := dst.Import(ctx, events); !errors.Is(err, ledger.ErrNotEmpty) {
		t.Fatalf("second import: %v, want ErrNotEmpty", err)
	}
	dst.Start(head)
	defer dst.Close()
	if rec, err := dst.Append(ctx, newEvent("Decrypt")); err != nil || rec.Event.Index != uint64(len(events)) {
		t.Fatalf("append after import: index %d, err %v", rec.Event.Index, err)
	}

	other, err := ledger.Open(ctx, nc, ledger.Config{Stream: "OTHER", Subject: "other.events"})
	if err != nil {
		t.Fatal(err)
	}
	var bl *chain.BrokenLinkError
	if _, err := other.Import(ctx, [][]byte{events[0], events[2]}); !errors.As(err, &bl) {
		t.Fatalf("import of events that do not link: %v, want a broken link", err)
	}
}
