package export_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/export"
	"github.com/keyledger/keyledger/ledger/internal/ledgertest"
	"github.com/keyledger/keyledger/ledger/offline"
)

// signedLedger is a ledger of single-event messages an hour apart, the
// first registering its writer, that stores a signed checkpoint of all of
// them.
type signedLedger struct {
	*ledgertest.Ledger
	checkpoint []byte
}

func newSignedLedger(t *testing.T, events int) *signedLedger {
	f := ledgertest.New(t, ledger.Config{}, events)
	return &signedLedger{f, f.Checkpoint(events, nil)}
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
	s.Forge([]byte("not a message any writer signed"))
	dir := filepath.Join(t.TempDir(), "export")
	req := export.Request{Ledger: s.L, Dir: dir, Checkpoints: s}
	if !req.Whole() {
		t.Fatal("a JSON-lines export of everything into a directory is not Whole")
	}
	res, err := export.Export(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != len(s.Recs) || res.Quarantined != 1 {
		t.Fatalf("Export = %+v, want %d events and the forged message quarantined", res, len(s.Recs))
	}
	events := read(t, dir, offline.EventsFile)
	if !bytes.Equal(events, lines(s.Recs)) {
		t.Fatalf("the export's events are not the stored bytes:\n%s", events)
	}
	v, err := offline.Verify(events, read(t, dir, offline.CheckpointFile), s.Vkey)
	if err != nil || v.Events != int64(len(s.Recs)) || v.Uncovered() != 0 {
		t.Fatalf("offline.Verify = %+v, %v", v, err)
	}
	wr, err := offline.VerifyWriters(events, read(t, dir, offline.SignaturesFile))
	if err == nil {
		err = offline.CheckNamedWriters(v.Checkpoint.Writers(), wr.Writers)
	}
	if err != nil || wr.Messages != len(s.Recs) {
		t.Fatalf("writer signatures: %+v, %v", wr, err)
	}
}

// A window keeps the events at or after Since and before Until; it is not
// a whole export, so no signatures or checkpoint are written beside it.
// Without a directory the events go to Out.
func TestWindowedExport(t *testing.T) {
	s := newSignedLedger(t, 6)
	ctx := context.Background()
	since, until := s.Recs[2].Event.Time, s.Recs[4].Event.Time
	dir := t.TempDir()
	res, err := export.Export(ctx, export.Request{Ledger: s.L, Dir: dir, Since: since, Until: until, Checkpoints: s})
	if err != nil || res.Events != 2 {
		t.Fatalf("Export = %+v, %v; want events 2 and 3", res, err)
	}
	if got := read(t, dir, offline.EventsFile); !bytes.Equal(got, lines(s.Recs[2:4])) {
		t.Fatalf("windowed export:\n%s", got)
	}
	for _, name := range []string{offline.SignaturesFile, offline.CheckpointFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a windowed export wrote %s (%v)", name, err)
		}
	}
	var out bytes.Buffer
	if _, err := export.Export(ctx, export.Request{Ledger: s.L, Out: &out, Since: since}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), lines(s.Recs[2:])) {
		t.Fatalf("export to a writer:\n%s", out.Bytes())
	}
}

// A deployment that never stored a checkpoint exports without one; any
// other failure to read it fails the export.
func TestExportCheckpointErrors(t *testing.T) {
	s := newSignedLedger(t, 2)
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := export.Export(ctx, export.Request{Ledger: s.L, Dir: dir, Checkpoints: failing{checkpoint.ErrNone}}); err != nil {
		t.Fatalf("no checkpoint stored: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, offline.CheckpointFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a checkpoint file without a checkpoint (%v)", err)
	}
	broken := errors.New("stream unreadable")
	if _, err := export.Export(ctx, export.Request{Ledger: s.L, Dir: t.TempDir(), Checkpoints: failing{broken}}); !errors.Is(err, broken) {
		t.Fatalf("an unreadable checkpoint: %v", err)
	}
}

type failing struct{ err error }

func (f failing) Latest(context.Context) ([]byte, error) { return nil, f.err }
