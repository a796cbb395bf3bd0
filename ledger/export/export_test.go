package export_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/export"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
	"github.com/keyledger/keyledger/ledger/writer"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// signedLedger is a ledger of single-event messages an hour apart, the
// first registering its writer, and a signed checkpoint of all of them.
type signedLedger struct {
	l          *ledger.Ledger
	js         jetstream.JetStream
	recs       []event.Record
	checkpoint []byte
	vkey       string
}

func newSignedLedger(t *testing.T, events int) *signedLedger {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{DataDir: filepath.Join(t.TempDir(), "jetstream")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx := context.Background()
	w := writer.Generate()
	l, err := ledger.Open(ctx, nc, ledger.Config{Writer: w, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	head, err := l.Replay(ctx, chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	l.Start(head)
	t.Cleanup(l.Close)
	s := &signedLedger{l: l}
	s.js, _ = jetstream.New(nc)
	tree := &merkle.MemTree{}
	for i := range events {
		ev := &event.Event{Time: t0.Add(time.Duration(i) * time.Hour), Operation: "Encrypt", Account: "111122223333", KeyID: "k",
			Body: &event.APICall{}}
		if i == 0 {
			ev.Operation, ev.Body = "RegisterWriter", &event.WriterRegistered{WriterID: w.ID(), PublicKey: w.PublicText(), RegisteredBy: w.ID()}
		}
		r, err := l.Append(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		s.recs = append(s.recs, r)
		tree.Append(r.Raw)
	}
	skey, vkey, _ := note.GenerateKey(rand.Reader, "export-test")
	signer, _ := note.NewSigner(skey)
	root, _ := tree.Root(tree.Size())
	s.checkpoint, err = merkle.Sign(merkle.Checkpoint{Origin: "export-test", Size: tree.Size(), Root: root,
		Extensions: merkle.WriterLines(l.Writers())}, signer)
	if err != nil {
		t.Fatal(err)
	}
	s.vkey = vkey
	return s
}

func (s *signedLedger) Latest(context.Context) ([]byte, error) { return s.checkpoint, nil }

// lines are the stored bytes of recs, one a line.
func lines(recs []event.Record) []byte {
	var b []byte
	for _, r := range recs {
		b = append(append(b, r.Raw...), '\n')
	}
	return b
}

func read(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A whole export into a directory verifies offline with nothing but the
// checkpoint verifier key: the events are the stored bytes, every message
// is signed by a writer the events register, the checkpoint covers them.
// A message the fold quarantines is left out and counted.
func TestWholeExportVerifiesOffline(t *testing.T) {
	s := newSignedLedger(t, 6)
	ctx := context.Background()
	if _, err := s.js.Publish(ctx, "keyledger.events", []byte("not a message any writer signed")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "export")
	req := export.Request{Ledger: s.l, Dir: dir, Checkpoints: s}
	if !req.Whole() {
		t.Fatal("a JSON-lines export of everything into a directory is not Whole")
	}
	res, err := export.Export(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != len(s.recs) || res.Quarantined != 1 {
		t.Fatalf("Export = %+v, want %d events and the forged message quarantined", res, len(s.recs))
	}
	events := read(t, dir, offline.EventsFile)
	if !bytes.Equal(events, lines(s.recs)) {
		t.Fatalf("the export's events are not the stored bytes:\n%s", events)
	}
	v, err := offline.Verify(events, read(t, dir, offline.CheckpointFile), s.vkey)
	if err != nil || v.Events != int64(len(s.recs)) || v.Uncovered() != 0 {
		t.Fatalf("offline.Verify = %+v, %v", v, err)
	}
	wr, err := offline.VerifyWriters(events, read(t, dir, offline.SignaturesFile))
	if err == nil {
		err = offline.CheckNamedWriters(v.Checkpoint.Writers(), wr.Writers)
	}
	if err != nil || wr.Messages != len(s.recs) {
		t.Fatalf("writer signatures: %+v, %v", wr, err)
	}
}

// A window keeps the events at or after Since and before Until; it is not
// a whole export, so no signatures or checkpoint are written beside it.
// Without a directory the events go to Out.
func TestWindowedExport(t *testing.T) {
	s := newSignedLedger(t, 6)
	ctx := context.Background()
	since, until := s.recs[2].Event.Time, s.recs[4].Event.Time
	dir := t.TempDir()
	res, err := export.Export(ctx, export.Request{Ledger: s.l, Dir: dir, Since: since, Until: until, Checkpoints: s})
	if err != nil || res.Events != 2 {
		t.Fatalf("Export = %+v, %v; want events 2 and 3", res, err)
	}
	if got := read(t, dir, offline.EventsFile); !bytes.Equal(got, lines(s.recs[2:4])) {
		t.Fatalf("windowed export:\n%s", got)
	}
	for _, name := range []string{offline.SignaturesFile, offline.CheckpointFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a windowed export wrote %s (%v)", name, err)
		}
	}
	var out bytes.Buffer
	if _, err := export.Export(ctx, export.Request{Ledger: s.l, Out: &out, Since: since}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), lines(s.recs[2:])) {
		t.Fatalf("export to a writer:\n%s", out.Bytes())
	}
}

// A deployment that never stored a checkpoint exports without one; any
// other failure to read it fails the export.
func TestExportCheckpointErrors(t *testing.T) {
	s := newSignedLedger(t, 2)
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := export.Export(ctx, export.Request{Ledger: s.l, Dir: dir, Checkpoints: failing{checkpoint.ErrNone}}); err != nil {
		t.Fatalf("no checkpoint stored: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, offline.CheckpointFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a checkpoint file without a checkpoint (%v)", err)
	}
	broken := errors.New("stream unreadable")
	if _, err := export.Export(ctx, export.Request{Ledger: s.l, Dir: t.TempDir(), Checkpoints: failing{broken}}); !errors.Is(err, broken) {
		t.Fatalf("an unreadable checkpoint: %v", err)
	}
}

type failing struct{ err error }

func (f failing) Latest(context.Context) ([]byte, error) { return nil, f.err }
