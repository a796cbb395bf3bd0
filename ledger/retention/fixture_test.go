package retention

import (
	"context"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/segment"
	"github.com/keyledger/keyledger/ledger/writer"
)

// t0 is the time of a fixture's first event; each next one is an hour on.
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// fixture is a signed ledger on an in-process nats-server whose writer
// rolls to a new segment every two messages, and a checkpoint key.
type fixture struct {
	t      *testing.T
	nc     *nats.Conn
	w      *writer.Key
	signer note.Signer
	vkey   string
	l      *ledger.Ledger // started; nil once closed
	recs   []event.Record
}

// newFixture writes events single-event messages: the first registers the
// writer, the rest are an hour apart from t0 on.
func newFixture(t *testing.T, events int) *fixture {
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
	skey, vkey, err := note.GenerateKey(rand.Reader, "retention-test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, nc: nc, w: writer.Generate(), signer: signer, vkey: vkey}
	f.l = f.open()
	head, err := f.l.Replay(context.Background(), chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	f.l.Start(head)
	t.Cleanup(func() {
		if f.l != nil {
			f.l.Close()
		}
	})
	f.append(&event.Event{Time: t0, Operation: "RegisterWriter",
		Body: &event.WriterRegistered{WriterID: f.w.ID(), PublicKey: f.w.PublicText(), RegisteredBy: f.w.ID()}})
	for i := 1; i < events; i++ {
		f.append(&event.Event{Time: f.before(i), Operation: "Encrypt", Account: "111122223333",
			KeyID: "k", Body: &event.APICall{}})
	}
	return f
}

// open opens the fixture's ledger with its writer key, not replayed.
func (f *fixture) open() *ledger.Ledger {
	f.t.Helper()
	l, err := ledger.Open(context.Background(), f.nc, ledger.Config{Writer: f.w, SegmentMessages: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

// restart closes the running ledger, as a stopped server would, and
// opens it again for a maintenance command.
func (f *fixture) restart() *ledger.Ledger {
	f.t.Helper()
	if f.l != nil {
		f.l.Close()
		f.l = nil
	}
	return f.open()
}

func (f *fixture) append(ev *event.Event) event.Record {
	f.t.Helper()
	r, err := f.l.Append(context.Background(), ev)
	if err != nil {
		f.t.Fatal(err)
	}
	f.recs = append(f.recs, r)
	return r
}

// checkpoint signs a checkpoint of the first size events, naming the
// ledger's writers, with the fixture's key (or signer, if given).
func (f *fixture) checkpoint(size int, signer note.Signer) []byte {
	f.t.Helper()
	tree := &merkle.MemTree{}
	for _, r := range f.recs[:size] {
		if err := tree.Append(r.Raw); err != nil {
			f.t.Fatal(err)
		}
	}
	root, err := tree.Root(int64(size))
	if err != nil {
		f.t.Fatal(err)
	}
	if signer == nil {
		signer = f.signer
	}
	signed, err := merkle.Sign(merkle.Checkpoint{Origin: "retention-test", Size: int64(size), Root: root,
		Extensions: merkle.WriterLines(map[string]string{f.w.ID(): f.w.PublicText()})}, signer)
	if err != nil {
		f.t.Fatal(err)
	}
	return signed
}

// before is the time of the event at index i: a cut that archives the
// events before it.
func (f *fixture) before(i int) time.Time { return t0.Add(time.Duration(i) * time.Hour) }

// archive archives the events before the cut, with a checkpoint of every
// event so far.
func (f *fixture) archive(l *ledger.Ledger, before time.Time, whole bool) segment.Archive {
	f.t.Helper()
	res, err := Archive(context.Background(), ArchiveRequest{Ledger: l, Stream: ledger.DefaultStream,
		Checkpoint: f.checkpoint(len(f.recs), nil), Verifier: f.vkey,
		Before: before, WholeSegments: whole, Dir: filepath.Join(f.t.TempDir(), "archive")})
	if err != nil {
		f.t.Fatal(err)
	}
	return res.Archive
}

// sealedEnds are the last stream sequences of the sealed segments.
func sealedEnds(t *testing.T, l *ledger.Ledger) []uint64 {
	t.Helper()
	segs, err := l.Segments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ends []uint64
	for _, s := range segs {
		if s.Sealed {
			ends = append(ends, s.Last)
		}
	}
	return ends
}
