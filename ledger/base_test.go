package ledger

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/segment"
	"github.com/keyledger/keyledger/ledger/writer"
)

func openSigned(t *testing.T, nc *nats.Conn, w *writer.Key) (*Ledger, chain.Head) {
	t.Helper()
	l, err := Open(context.Background(), nc, Config{Writer: w, SegmentMessages: 2})
	if err != nil {
		t.Fatal(err)
	}
	head, err := l.Replay(context.Background(), chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return l, head
}

// A ledger whose oldest segments are removed (SegmentRemoved, then the
// signed base, then the streams) is read from its base after a restart,
// even with a single segment left; a base that does not verify, or that
// names no SegmentRemoved event of its own, is refused at Open.
func TestBaseAfterRemovedSegments(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{DataDir: t.TempDir()})
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
	l, head := openSigned(t, nc, w)
	l.Start(head)
	var recs []event.Record
	appendOne := func(body event.Body) event.Record {
		t.Helper()
		r, err := l.Append(ctx, &event.Event{Time: time.Now(), Operation: "Test", Body: body})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		return r
	}
	appendOne(&event.WriterRegistered{WriterID: w.ID(), PublicKey: w.PublicText(), RegisteredBy: w.ID()})
	for i := 0; i < 6; i++ {
		appendOne(&event.APICall{})
	}
	// Before any removal the live ledger is the whole ledger, and the
	// base checks have nothing to refuse.
	if l.FirstIndex() != 0 || l.FirstSeq() != 1 {
		t.Fatalf("before a removal: FirstIndex %d, FirstSeq %d; want 0 and 1", l.FirstIndex(), l.FirstSeq())
	}
	if err := l.CheckBaseWriters(nil, "nothing"); err != nil {
		t.Fatalf("CheckBaseWriters without a base: %v", err)
	}
	if err := l.CheckBaseTree(nil); err != nil {
		t.Fatalf("CheckBaseTree without a base: %v", err)
	}
	segs, err := l.Segments(ctx)
	if err != nil || len(segs) < 3 {
		t.Fatalf("segments %+v, %v", segs, err)
	}
	// Remove every closed segment: the base is the end of the last one.
	through := segs[len(segs)-2].Last
	tree := &merkle.MemTree{}
	tiles := merkle.NewMemoryStore()
	tiled := merkle.New(tiles, 1)
	var n uint64
	var last event.Hash
	heads := chain.Heads{}
	for _, r := range recs {
		if r.Seq <= through {
			tree.Append(r.Raw)
			tiled.Append(r.Raw)
			n, last = r.Pos+1, r.Hash
			heads.Add(r)
		}
	}
	base, err := segment.At(tree, n, last, l.Writers(), through, heads)
	if err != nil {
		t.Fatal(err)
	}
	removed := appendOne(&event.SegmentRemoved{NextIndex: n, LastHash: base.Prev, Through: through})
	if err := l.StoreBase(ctx, base, tiled.Frontier(), removed); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DeleteSegmentsThrough(ctx); err != nil {
		t.Fatal(err)
	}
	after := removed
	l.Close()

	r, rhead := openSigned(t, nc, w)
	if !r.Base().Equal(base) {
		t.Fatalf("base after restart %+v, want %+v", r.Base(), base)
	}
	if rhead.Hash != after.Hash || rhead.Count != uint64(len(recs)) {
		t.Fatalf("replay from the base ends at %+v, want the last event %d", rhead, after.Event.Index)
	}
	checkReaderView(t, r, recs, n, through, tiles)
	if left, _ := r.Segments(ctx); len(left) != 1 {
		t.Fatalf("segments left: %+v", left)
	}
	if rep, err := r.AuditAgainst(ctx, nil, nil); err != nil || len(rep.Quarantined) > 0 || rep.Head.Hash != after.Hash {
		t.Fatalf("audit from the base: %+v %v", rep, err)
	}
	if err := r.EventsFrom(ctx, 0, func(event.Record) error { return nil }); !errors.As(err, new(*MissingSegmentError)) {
		t.Fatalf("EventsFrom(0) after the removal: %v", err)
	}
	r.Start(rhead)
	later, err := r.Append(ctx, &event.Event{Time: time.Now(), Operation: "Test", Body: &event.APICall{}})
	if err != nil {
		t.Fatalf("append after a restart on one remaining segment: %v", err)
	}
	r.Close()

	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, "KEYLEDGER_BASE")
	if err != nil {
		t.Fatal(err)
	}
	put := func(rec baseRecord, sign bool) {
		t.Helper()
		if sign {
			rec.Signature = base64.StdEncoding.EncodeToString(w.SignRaw(rec.signedBytes()))
		}
		raw, _ := json.Marshal(rec)
		if _, err := kv.Put(ctx, baseKey, raw); err != nil {
			t.Fatal(err)
		}
	}
	e, _ := kv.Get(ctx, baseKey)
	var good baseRecord
	json.Unmarshal(e.Value(), &good)
	for name, tc := range map[string]struct {
		rec  func(baseRecord) baseRecord
		sign bool
	}{
		"changed, signature kept": {func(b baseRecord) baseRecord { b.Base.Seq--; return b }, false},
		"names another event":     {func(b baseRecord) baseRecord { b.EventIndex, b.EventSeq = later.Event.Index, later.Seq; return b }, true},
	} {
		put(tc.rec(good), tc.sign)
		_, err := Open(ctx, nc, Config{Writer: w})
		var be *BaseError
		if !errors.As(err, &be) {
			t.Fatalf("%s: Open = %v, want a BaseError", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
}

// checkReaderView checks what a reader of a ledger whose first n events
// (stream sequences up to through) were removed is given: where the live
// history starts, a fold and Merkle trees that continue the removed
// prefix, so that folding and hashing the live events alone ends where
// the whole ledger does.
func checkReaderView(t *testing.T, r *Ledger, recs []event.Record, n, through uint64, tiles merkle.TileStore) {
	t.Helper()
	ctx := context.Background()
	if r.FirstIndex() != n || r.FirstSeq() != through+1 {
		t.Fatalf("FirstIndex %d, FirstSeq %d; want %d and %d", r.FirstIndex(), r.FirstSeq(), n, through+1)
	}
	whole := &merkle.MemTree{}
	for _, rec := range recs {
		whole.Append(rec.Raw)
	}
	want, _ := whole.Root(whole.Size())
	f, err := r.Folder()
	if err != nil {
		t.Fatal(err)
	}
	mem, err := r.MemTree()
	if err != nil {
		t.Fatal(err)
	}
	err = r.Messages(ctx, func(m chain.Message) error {
		got, err := f.Fold(m)
		for _, rec := range got {
			mem.Append(rec.Raw)
		}
		return err
	})
	if err != nil || f.Head().Hash != recs[len(recs)-1].Hash {
		t.Fatalf("the fold from Folder ends at %+v (%v), want the last event", f.Head(), err)
	}
	if got, err := mem.Root(mem.Size()); err != nil || got != want || mem.Size() != int64(len(recs)) {
		t.Fatalf("MemTree and the live events: size %d root %v (%v), want the whole ledger's (%d, %v)", mem.Size(), got, err, len(recs), want)
	}
	tiled, err := r.TiledTree(tiles, 1)
	if err != nil || tiled.Size() != int64(n) {
		t.Fatalf("TiledTree: size %v (%v), want %d", tiled, err, n)
	}
	if err := r.CheckBaseTree(tiled.Root); err != nil {
		t.Fatalf("CheckBaseTree of TiledTree over the kept tiles: %v", err)
	}
}
