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
	segs, err := l.Segments(ctx)
	if err != nil || len(segs) < 3 {
		t.Fatalf("segments %+v, %v", segs, err)
	}
	// Remove every closed segment: the base is the end of the last one.
	through := segs[len(segs)-2].Last
	tree := &merkle.MemTree{}
	tiled := merkle.New(merkle.NewMemoryStore(), 1)
	var n uint64
	var last event.Hash
	for _, r := range recs {
		if r.Seq <= through {
			tree.Append(r.Raw)
			tiled.Append(r.Raw)
			n, last = r.Event.Index+1, r.Hash
		}
	}
	base, err := segment.At(tree, n, last, l.Writers(), through)
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
	if left, _ := r.Segments(ctx); len(left) != 1 {
		t.Fatalf("segments left: %+v", left)
	}
	if rep, err := r.AuditAgainst(ctx, nil); err != nil || len(rep.Quarantined) > 0 || rep.Head.Hash != after.Hash {
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
