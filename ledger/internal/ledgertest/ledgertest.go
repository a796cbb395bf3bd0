// Package ledgertest builds signed ledgers on an in-process nats-server
// for the tests of the packages that read and maintain them (export,
// verify, retention). It is test support: nothing else imports it.
package ledgertest

import (
	"context"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/writer"
)

// T0 is the time of a ledger's first event; each next one is an hour on.
var T0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// At is the time of the event at index i: a cut before it keeps events
// 0…i-1.
func At(i int) time.Time { return T0.Add(time.Duration(i) * time.Hour) }

// Ledger is a ledger signed by one writer on its own nats-server, and a
// checkpoint key.
type Ledger struct {
	t      *testing.T
	NC     *nats.Conn
	JS     jetstream.JetStream
	Writer *writer.Key
	Config ledger.Config // what Open opens with: the writer, quiet logs
	Signer note.Signer
	Vkey   string         // Signer's verifier key
	L      *ledger.Ledger // started; nil after Restart
	Recs   []event.Record // what was appended, in order
	// StoreDir is the server's JetStream directory (block files, for
	// tests that damage or read them).
	StoreDir string
}

// New starts a nats-server, opens a ledger with cfg and a fresh writer
// key, starts it, and appends events single-event messages: the first
// registers the writer, the others are Encrypts, at At(i).
func New(t *testing.T, cfg ledger.Config, events int) *Ledger {
	t.Helper()
	store := filepath.Join(t.TempDir(), "jetstream")
	srv, err := embedded.Start(embedded.Options{DataDir: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "ledgertest")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Writer = writer.Generate()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Ledger{t: t, NC: nc, JS: js, Writer: cfg.Writer, Config: cfg, Signer: signer, Vkey: vkey, StoreDir: store}
	f.L = f.Open()
	head, err := f.L.Replay(context.Background(), chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	f.L.Start(head)
	t.Cleanup(func() {
		if f.L != nil {
			f.L.Close()
		}
	})
	w := f.Writer
	f.Append(&event.Event{Time: At(0), Operation: "RegisterWriter",
		Body: &event.WriterRegistered{WriterID: w.ID(), PublicKey: w.PublicText(), RegisteredBy: w.ID()}})
	for i := 1; i < events; i++ {
		f.Append(&event.Event{Time: At(i), Operation: "Encrypt", Account: "111122223333", KeyID: "k", Body: &event.APICall{}})
	}
	return f
}

// Open opens the ledger again with the same configuration, not replayed
// (what a maintenance command or a reader does).
func (f *Ledger) Open() *ledger.Ledger {
	f.t.Helper()
	l, err := ledger.Open(context.Background(), f.NC, f.Config)
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

// Restart closes the running ledger, as a stopped server would, and opens
// it again, not replayed.
func (f *Ledger) Restart() *ledger.Ledger {
	f.t.Helper()
	if f.L != nil {
		f.L.Close()
		f.L = nil
	}
	return f.Open()
}

// Append appends ev to the running ledger.
func (f *Ledger) Append(ev *event.Event) event.Record {
	f.t.Helper()
	r, err := f.L.Append(context.Background(), ev)
	if err != nil {
		f.t.Fatal(err)
	}
	f.Recs = append(f.Recs, r)
	return r
}

// Checkpoint signs a checkpoint of the first size events, naming the
// writer, with Signer (or signer, if not nil).
func (f *Ledger) Checkpoint(size int, signer note.Signer) []byte {
	f.t.Helper()
	tree := &merkle.MemTree{}
	for _, r := range f.Recs[:size] {
		if err := tree.Append(r.Raw); err != nil {
			f.t.Fatal(err)
		}
	}
	root, err := tree.Root(int64(size))
	if err != nil {
		f.t.Fatal(err)
	}
	if signer == nil {
		signer = f.Signer
	}
	signed, err := merkle.Sign(merkle.Checkpoint{Origin: "ledgertest", Size: int64(size), Root: root,
		Extensions: merkle.WriterLines(map[string]string{f.Writer.ID(): f.Writer.PublicText()})}, signer)
	if err != nil {
		f.t.Fatal(err)
	}
	return signed
}

// OtherSigner is a checkpoint key nobody trusts.
func OtherSigner(t *testing.T) note.Signer {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, "ledgertest")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Forge publishes data on the ledger's subject as an unsigned message:
// what whoever holds a NATS credential could write. Readers quarantine it.
func (f *Ledger) Forge(data []byte) {
	f.t.Helper()
	subject := f.Config.Subject
	if subject == "" {
		subject = "keyledger.events"
	}
	if _, err := f.JS.Publish(context.Background(), subject, data); err != nil {
		f.t.Fatal(err)
	}
}
