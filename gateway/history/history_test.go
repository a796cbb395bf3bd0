package history_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/gateway/history"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/retention"
	"github.com/keyledger/keyledger/ledger/snapshot"
	"github.com/keyledger/keyledger/ledger/writer"
	"github.com/keyledger/keyledger/projections/compliance"
	"github.com/keyledger/keyledger/projections/resume"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// at is the time of event i of a deployment: an hour apart.
func at(i int) time.Time { return t0.Add(time.Duration(i) * time.Hour) }

// deployment is a stopped deployment's ledger, checkpoints and snapshots
// on an in-process nats-server: a key created, used, disabled, described
// anew and enabled again.
type deployment struct {
	t      *testing.T
	nc     *nats.Conn
	w      *writer.Key
	cfg    ledger.Config
	recs   []event.Record
	signer note.Signer
	vkey   string
	cps    *checkpoint.Store
	snaps  *snapshot.Store
}

func newDeployment(t *testing.T, cfg ledger.Config) *deployment {
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
	skey, vkey, _ := note.GenerateKey(rand.Reader, "history-test")
	signer, _ := note.NewSigner(skey)
	d := &deployment{t: t, nc: nc, w: writer.Generate(), signer: signer, vkey: vkey}
	cfg.Writer, cfg.Logger = d.w, slog.New(slog.DiscardHandler)
	d.cfg = cfg
	l := d.open()
	head, err := l.Replay(ctx, chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	l.Start(head)
	defer l.Close()
	key := func(op string, body event.Body) *event.Event {
		return &event.Event{Operation: op, Account: "111122223333", Region: "us-east-1", KeyID: "k1", Body: body}
	}
	for i, ev := range []*event.Event{
		{Operation: "RegisterWriter", Body: &event.WriterRegistered{WriterID: d.w.ID(), PublicKey: d.w.PublicText(), RegisteredBy: d.w.ID()}},
		key("CreateKey", &event.KeyCreated{Description: "first", KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS",
			Material: event.MaterialRef{ID: "m1", WrappedHash: strings.Repeat("0", 64)}}),
		key("Encrypt", &event.APICall{MaterialID: "m1"}),
		key("DisableKey", &event.KeyDisabled{}),
		key("UpdateKeyDescription", &event.KeyDescriptionUpdated{Description: "second"}),
		key("EnableKey", &event.KeyEnabled{}),
	} {
		ev.Time = at(i)
		r, err := l.Append(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		d.recs = append(d.recs, r)
	}
	if d.cps, err = checkpoint.Open(ctx, nc, ledger.DefaultStream, 1); err != nil {
		t.Fatal(err)
	}
	if d.snaps, err = snapshot.Open(ctx, nc, ledger.DefaultStream, 1); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *deployment) open() *ledger.Ledger {
	d.t.Helper()
	l, err := ledger.Open(context.Background(), d.nc, d.cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	return l
}

// checkpoint stores a checkpoint of the first size events naming the
// writer, signed with the deployment's key, or with root instead of the
// ledger's if not zero.
func (d *deployment) checkpoint(size int, root merkle.Checkpoint) {
	d.t.Helper()
	tree := &merkle.MemTree{}
	for _, r := range d.recs[:size] {
		tree.Append(r.Raw)
	}
	cp := merkle.Checkpoint{Origin: "history-test", Size: int64(size),
		Extensions: merkle.WriterLines(map[string]string{d.w.ID(): d.w.PublicText()})}
	cp.Root, _ = tree.Root(int64(size))
	if root.Size != 0 {
		cp.Root = root.Root
	}
	signed, err := merkle.Sign(cp, d.signer)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.cps.Put(context.Background(), signed); err != nil {
		d.t.Fatal(err)
	}
}

// snapshot stores a snapshot of the projections through event index
// through, signed by key.
func (d *deployment) snapshot(through int, key *writer.Key) {
	d.t.Helper()
	p := resume.New(&merkle.MemTree{}, nil)
	p.Apply(d.recs[:through+1])
	im, err := p.Capture(func(uint64) map[uint64]string { return nil })
	if err != nil {
		d.t.Fatal(err)
	}
	body, err := im.Encode()
	if err != nil {
		d.t.Fatal(err)
	}
	h := snapshot.Header{Index: im.Head.Index, Seq: im.Head.Seq, Hash: im.Head.Hash.String(), Count: im.Head.Count,
		Taken: time.Now().UTC(), EventTime: im.Latest}
	if err := d.snaps.Put(context.Background(), h, body, key); err != nil {
		d.t.Fatal(err)
	}
}

// source is what a reader of the stopped deployment answers from.
func (d *deployment) source(mod func(*history.Source)) *history.Source {
	s := &history.Source{Ledger: d.open(), Snapshots: d.snaps, Checkpoints: d.cps, Verifier: d.vkey, VerifierFile: "checkpoint.key.pub"}
	if mod != nil {
		mod(s)
	}
	return s
}

// A key is described from the newest snapshot at or before the time that
// a trusted writer signed (the data directory's own key, or one the
// signed checkpoint names) with the answer a fold from the first event
// gives; an untrusted snapshot, or one holding later events, is not used.
func TestDescribe(t *testing.T) {
	d := newDeployment(t, ledger.Config{})
	d.checkpoint(len(d.recs), merkle.Checkpoint{})
	d.snapshot(3, d.w)
	ctx := context.Background()
	stranger := writer.Generate()
	for _, tc := range []struct {
		name     string
		asOf     time.Time
		mod      func(*history.Source)
		snapshot bool // the answer starts from the snapshot
		state    string
		desc     string
	}{
		{"own writer key", at(4).Add(30 * time.Minute), func(s *history.Source) { s.Own, s.Verifier = d.w, "" }, true, "Disabled", "second"},
		{"writer the checkpoint names", at(4).Add(30 * time.Minute), nil, true, "Disabled", "second"},
		{"no one to trust", at(4).Add(30 * time.Minute), func(s *history.Source) { s.Own, s.Verifier = stranger, "" }, false, "Disabled", "second"},
		{"snapshot holds later events", at(2), nil, false, "Enabled", "first"},
		{"no snapshots", at(6), func(s *history.Source) { s.Snapshots = nil }, false, "Enabled", "second"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := history.Describe(ctx, d.source(tc.mod), "k1", "us-east-1", tc.asOf)
			if err != nil {
				t.Fatal(err)
			}
			if (got.SnapshotIndex != nil) != tc.snapshot {
				t.Errorf("started from snapshot %v, want %v", got.SnapshotIndex, tc.snapshot)
			}
			if !got.Exists || got.Key.State != tc.state || got.Key.Description != tc.desc {
				t.Fatalf("k1 at %s: %+v, want %s %q", tc.asOf, got.Key, tc.state, tc.desc)
			}
			full, err := history.Describe(ctx, d.source(func(s *history.Source) { s.Snapshots = nil }), "k1", "us-east-1", tc.asOf)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(full.Key, got.Key); diff != "" {
				t.Fatalf("the answer differs from a fold from the first event (-full +got):\n%s", diff)
			}
		})
	}
}

// The report from the whole ledger verifies the chain and every stored
// checkpoint, says when it could not check them, and names a checkpoint
// the ledger does not match; from a snapshot it says what it did not
// re-read.
func TestComplianceIntegrity(t *testing.T) {
	d := newDeployment(t, ledger.Config{})
	ctx := context.Background()
	d.checkpoint(3, merkle.Checkpoint{})
	d.checkpoint(len(d.recs), merkle.Checkpoint{})
	opts := compliance.Options{Now: at(7), Region: "us-east-1", MaxAgeDays: 365, UnusedDays: 90}
	// integrity is the report's audit-integrity check, as text.
	integrity := func(s *history.Source, full bool) string {
		t.Helper()
		rep, err := history.Compliance(ctx, s, opts, full)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range rep.Checks {
			if c.ID == "audit-integrity" {
				return fmt.Sprintf("%s: %s %v", c.Status, c.Summary, c.Findings)
			}
		}
		t.Fatal("the report has no audit-integrity check")
		return ""
	}
	want := func(name, got string, parts ...string) {
		t.Helper()
		for _, p := range parts {
			if !strings.Contains(got, p) {
				t.Fatalf("%s: integrity %q lacks %q", name, got, p)
			}
		}
	}
	want("whole ledger", integrity(d.source(nil), true), "PASS", fmt.Sprintf("walked and verified over %d events", len(d.recs)), "2 signed checkpoints verify")
	want("without a verifier key", integrity(d.source(func(s *history.Source) { s.Verifier = "" }), true),
		"no checkpoint verifier key (checkpoint.key.pub)")

	d.snapshot(3, d.w)
	want("from a snapshot", integrity(d.source(nil), false), "WARN", "answered from the snapshot of the first 4 events and the 2 events after it")
	want("--full with a snapshot stored", integrity(d.source(nil), true), "PASS", "2 signed checkpoints verify")

	d.checkpoint(4, merkle.Checkpoint{Size: 4}) // signed with the key, a zero root
	want("a signed checkpoint the ledger does not match", integrity(d.source(nil), true), "checkpoint 3")
}

// After removed segments a reader answers only when a signed checkpoint
// names the writers of the base; without a snapshot a key is not
// described from the live part alone.
func TestRemovedSegmentsNeedAVouchingCheckpoint(t *testing.T) {
	d := newDeployment(t, ledger.Config{SegmentMessages: 2})
	ctx := context.Background()
	removeFirstSegments(t, d)
	d.checkpoint(len(d.recs), merkle.Checkpoint{})

	if err := d.source(func(s *history.Source) { s.Verifier = "" }).CheckBase(ctx); err == nil || !strings.Contains(err.Error(), "vouch") {
		t.Fatalf("CheckBase without a verifier key: %v", err)
	}
	if _, err := history.Compliance(ctx, d.source(func(s *history.Source) { s.Verifier = "" }), compliance.Options{Now: at(7)}, true); err == nil {
		t.Fatal("a report from an unvouched base")
	}
	if err := d.source(nil).CheckBase(ctx); err != nil {
		t.Fatalf("CheckBase with the checkpoint naming the writer: %v", err)
	}
	_, err := history.Describe(ctx, d.source(nil), "k1", "us-east-1", at(6))
	if _, ok := err.(*history.RemovedError); !ok {
		t.Fatalf("Describe without a snapshot after removed segments: %v, want a RemovedError", err)
	}
	d.snapshot(len(d.recs)-1, d.w)
	got, err := history.Describe(ctx, d.source(nil), "k1", "us-east-1", at(6))
	if err != nil || got.SnapshotIndex == nil || got.Key == nil || got.Key.Description != "second" {
		t.Fatalf("Describe from a snapshot after removed segments: %+v, %v", got, err)
	}
}

// removeFirstSegments archives the sealed segments before event 3 and
// removes them (audit archive, audit prune).
func removeFirstSegments(t *testing.T, d *deployment) {
	t.Helper()
	ctx := context.Background()
	tree := &merkle.MemTree{}
	for _, r := range d.recs {
		tree.Append(r.Raw)
	}
	cp := merkle.Checkpoint{Origin: "history-test", Size: tree.Size(),
		Extensions: merkle.WriterLines(map[string]string{d.w.ID(): d.w.PublicText()})}
	cp.Root, _ = tree.Root(tree.Size())
	signed, err := merkle.Sign(cp, d.signer)
	if err != nil {
		t.Fatal(err)
	}
	res, err := retention.Archive(ctx, retention.ArchiveRequest{Ledger: d.open(), Stream: ledger.DefaultStream, Checkpoint: signed,
		Verifier: d.vkey, Before: at(3), WholeSegments: true, Dir: filepath.Join(t.TempDir(), "archive")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := retention.Prune(ctx, retention.PruneRequest{Ledger: d.open(), Archive: res.Archive, Now: at(0).AddDate(1, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	if first := d.open().FirstIndex(); first == 0 {
		t.Fatal("nothing was removed")
	}
}

// Finding: the data directory's own writer key was trusted to sign
// snapshots even once the ledger had revoked it, though a revoked key is
// the thief's as much as the instance's: with the key and keyledger's
// NATS identity, a snapshot of any key state they like was what
// `keyledger keys describe` and `report compliance` answered from on the
// revoked instance's data directory.
func TestRevokedOwnKeySignsNoTrustedSnapshot(t *testing.T) {
	d := newDeployment(t, ledger.Config{})
	ctx := context.Background()
	successor := writer.Generate()
	l := d.open()
	head, err := l.Replay(ctx, chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	l.Start(head)
	for i, body := range []event.Body{
		&event.WriterRegistered{WriterID: successor.ID(), PublicKey: successor.PublicText(), RegisteredBy: d.w.ID()},
		&event.WriterRevoked{WriterID: d.w.ID(), RevokedBy: d.w.ID(), Reason: "data directory copied"},
	} {
		r, err := l.Append(ctx, &event.Event{Time: at(len(d.recs) + i), Operation: "RegisterWriter", Body: body})
		if err != nil {
			t.Fatal(err)
		}
		d.recs = append(d.recs, r)
	}
	if _, ok := l.RevokedWriter(d.w.ID()); !ok {
		t.Fatal("the ledger did not revoke the key")
	}
	l.Close()
	tree := &merkle.MemTree{}
	for _, r := range d.recs {
		tree.Append(r.Raw)
	}
	cp := merkle.Checkpoint{Origin: "history-test", Size: tree.Size(), Extensions: merkle.WriterLines(map[string]string{successor.ID(): successor.PublicText()}) +
		merkle.RevokedLines(map[string]string{d.w.ID(): d.w.PublicText()})}
	cp.Root, _ = tree.Root(tree.Size())
	signed, err := merkle.Sign(cp, d.signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cps.Put(ctx, signed); err != nil {
		t.Fatal(err)
	}
	d.snapshot(len(d.recs)-1, d.w) // signed with the revoked key, after its revocation
	got, err := history.Describe(ctx, d.source(func(s *history.Source) { s.Own = d.w }), "k1", "us-east-1", at(len(d.recs)))
	if err != nil {
		t.Fatal(err)
	}
	if got.SnapshotIndex != nil {
		t.Fatalf("answered from a snapshot the revoked own key signed (event %d)", *got.SnapshotIndex)
	}
	// Signed by the successor, the same snapshot is trusted.
	d.snapshot(len(d.recs)-1, successor)
	if got, err := history.Describe(ctx, d.source(func(s *history.Source) { s.Own = d.w }), "k1", "us-east-1", at(len(d.recs))); err != nil || got.SnapshotIndex == nil {
		t.Fatalf("a snapshot the live writer signed: %+v, %v", got.SnapshotIndex, err)
	}
}
