package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
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
	// As a start-up does: fold what is there, then write after it.
	if head, err = dst.Replay(ctx, chain.Head{}, func(event.Record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	dst.Start(head)
	defer dst.Close()
	rec, err := dst.Append(ctx, newEvent("Decrypt"))
	if err != nil {
		t.Fatalf("append after import: %v", err)
	}
	if rec.Event.Index != uint64(len(events)) {
		t.Fatalf("append after import: index %d, want %d", rec.Event.Index, len(events))
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

// TestImportSignsWithTheFirstWriter: a ledger whose writers sign imports
// into one every reader accepts, given its first writer's key, and is
// refused without it (the restored messages would all be quarantined).
func TestImportSignsWithTheFirstWriter(t *testing.T) {
	ctx := context.Background()
	w := writer.Generate()
	srv := startServer(t, t.TempDir())
	nc, err := srv.Connect("signed")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	src, err := ledger.Open(ctx, nc, ledger.Config{Writer: w})
	if err != nil {
		t.Fatal(err)
	}
	h, err := src.Replay(ctx, chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	src.Start(h)
	register := &event.Event{Time: time.Now(), Operation: "RegisterWriter",
		Body: &event.WriterRegistered{WriterID: w.ID(), PublicKey: w.PublicText(), RegisteredBy: w.ID()}}
	if _, err := src.Append(ctx, register); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 7; i++ {
		if _, err := src.Append(ctx, newEvent("Encrypt")); err != nil {
			t.Fatal(err)
		}
	}
	var events [][]byte
	if _, err := src.Replay(ctx, chain.Head{}, func(r event.Record) error {
		events = append(events, bytes.Clone(r.Raw))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	src.Close()

	wrong, err := ledger.Open(ctx, nc, ledger.Config{Stream: "WRONG", Subject: "wrong.events", Writer: writer.Generate()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.Import(ctx, events); !errors.Is(err, ledger.ErrImportWriter) {
		t.Fatalf("import with another writer's key: %v, want ErrImportWriter", err)
	}

	dst, err := ledger.Open(ctx, nc, ledger.Config{Stream: "RESTORED", Subject: "restored.events", Writer: w, MaxBatchEvents: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Import(ctx, events); err != nil {
		t.Fatal(err)
	}
	rep, err := chain.Audit(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Quarantined) != 0 || rep.Head.Count != uint64(len(events)) || rep.Writers[w.ID()] == "" {
		t.Fatalf("imported signed ledger: %d quarantined (%v), %d of %d events, writers %v",
			len(rep.Quarantined), rep.Quarantined, rep.Head.Count, len(events), rep.Writers)
	}
}

// TestImportRevokedWriter: a history that revokes a second writer imports
// with the first writer's key and verifies; one that revokes the key it
// is imported with is refused (ErrImportWriter), since every message after
// the revocation would be quarantined.
func TestImportRevokedWriter(t *testing.T) {
	ctx := context.Background()
	first, second := writer.Generate(), writer.Generate()
	srv := startServer(t, t.TempDir())
	nc, err := srv.Connect("revoked")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	history := func(stream string, revoke *writer.Key) [][]byte {
		t.Helper()
		src, err := ledger.Open(ctx, nc, ledger.Config{Stream: stream, Subject: stream + ".events", Writer: first})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		h, err := src.Replay(ctx, chain.Head{}, func(event.Record) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		src.Start(h)
		for _, b := range []event.Body{
			&event.WriterRegistered{WriterID: first.ID(), PublicKey: first.PublicText(), RegisteredBy: first.ID()},
			&event.WriterRegistered{WriterID: second.ID(), PublicKey: second.PublicText(), RegisteredBy: first.ID()},
			&event.WriterRevoked{WriterID: revoke.ID(), RevokedBy: first.ID()},
		} {
			if _, err := src.Append(ctx, &event.Event{Time: time.Now(), Operation: "RegisterWriter", Body: b}); err != nil {
				t.Fatal(err)
			}
		}
		if revoke == second {
			if _, err := src.Append(ctx, newEvent("Encrypt")); err != nil {
				t.Fatal(err)
			}
		}
		var events [][]byte
		if _, err := src.Replay(ctx, chain.Head{}, func(r event.Record) error {
			events = append(events, bytes.Clone(r.Raw))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return events
	}
	dst, err := ledger.Open(ctx, nc, ledger.Config{Stream: "DST1", Subject: "dst1.events", Writer: first})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Import(ctx, history("SRC1", second)); err != nil {
		t.Fatal(err)
	}
	if rep, err := chain.Audit(ctx, dst); err != nil || len(rep.Quarantined) != 0 || len(rep.Revoked) != 1 || rep.Writers[first.ID()] == "" {
		t.Fatalf("imported: %+v %v", rep, err)
	}
	dst.Close()
	dst, err = ledger.Open(ctx, nc, ledger.Config{Stream: "DST2", Subject: "dst2.events", Writer: first})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := dst.Import(ctx, history("SRC2", first)); !errors.Is(err, ledger.ErrImportWriter) || !strings.Contains(err.Error(), "revokes the key") {
		t.Fatalf("importing a history that revokes the importing key: %v", err)
	}
	// The fold decodes JSON as encoding/json does, so an event another
	// registered writer (or a thief holding its key) encoded its own way
	// revokes as well as the canonical one: the import must see it too.
	for _, spelled := range []string{`"type":"\u0057riterRevoked.v1"`, `"TYPE":"WriterRevoked.v1"`} {
		events := history("SRC3"+strconv.Itoa(len(spelled)), first)
		last := &events[len(events)-1]
		*last = bytes.Replace(*last, []byte(`"type":"WriterRevoked.v1"`), []byte(spelled), 1)
		if ev, err := event.Decode(*last); err != nil || ev.Body.Type() != event.TypeWriterRevoked {
			t.Fatalf("%s: %v", *last, err)
		}
		dst, err := ledger.Open(ctx, nc, ledger.Config{Stream: "DST3" + strconv.Itoa(len(spelled)), Subject: "dst3" + strconv.Itoa(len(spelled)) + ".events", Writer: first})
		if err != nil {
			t.Fatal(err)
		}
		defer dst.Close()
		if _, err := dst.Import(ctx, events); !errors.Is(err, ledger.ErrImportWriter) {
			rep, _ := chain.Audit(ctx, dst)
			t.Fatalf("importing a history that revokes the importing key in %s: %v; the restored ledger revokes %v", spelled, err, rep.Revoked)
		}
	}
}
