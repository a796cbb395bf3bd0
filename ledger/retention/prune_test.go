package retention

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/offline"
	"github.com/keyledger/keyledger/ledger/segment"
)

// day is a retention short enough that the fixture's events are past it a
// year after t0.
const day = 24 * time.Hour

var later = t0.Add(365 * day)

// removals are the SegmentRemoved events of the live ledger, in order.
func removals(t *testing.T, l *ledger.Ledger) []event.Record {
	t.Helper()
	var out []event.Record
	if _, err := l.Replay(context.Background(), chain.Head{}, func(r event.Record) error {
		if _, ok := r.Event.Body.(*event.SegmentRemoved); ok {
			out = append(out, r)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// segmentNames are the ledger's segment streams now.
func segmentNames(t *testing.T, l *ledger.Ledger) []string {
	t.Helper()
	segs, err := l.Segments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range segs {
		names = append(names, s.Stream)
	}
	return names
}

// Prune records the removal (a SegmentRemoved event naming the archive),
// stores the base, and deletes exactly the archived segments; the ledger
// then starts at the base, and a second run has nothing left to do.
func TestPruneRemovesTheArchivedSegments(t *testing.T) {
	f := newFixture(t, 9)
	ctx := context.Background()
	a := f.archive(f.L, f.before(5), true)
	before := segmentNames(t, f.L)
	l := f.Restart()
	kept := &keptCheckpoints{}
	res, err := Prune(ctx, PruneRequest{Ledger: l, Archive: a, Retention: 30 * day, Now: later, Checkpoints: kept})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Recorded || len(res.Streams) == 0 {
		t.Fatalf("Prune = %+v, want the removal recorded and streams deleted", res)
	}
	if signed, err := os.ReadFile(filepath.Join(a.Dir, offline.CheckpointFile)); err != nil || len(kept.signed) != 1 || !bytes.Equal(kept.signed[0], signed) {
		t.Fatalf("kept %d checkpoints, want the archive's (%v)", len(kept.signed), err)
	}

	r := f.Open()
	if !r.Base().Equal(a.Manifest.Next) || r.FirstIndex() != a.Manifest.Next.FirstIndex {
		t.Fatalf("after Prune the ledger starts at %+v, want the archive's next base %+v", r.Base(), a.Manifest.Next)
	}
	after := segmentNames(t, r)
	if want := before[len(res.Streams):]; !slices.Equal(after, want) {
		t.Fatalf("segments %v after deleting %v from %v", after, res.Streams, before)
	}
	rms := removals(t, f.Open())
	if len(rms) != 1 || rms[0].Event.Index != res.Event {
		t.Fatalf("SegmentRemoved events %d, want one at index %d", len(rms), res.Event)
	}
	sr := rms[0].Event.Body.(*event.SegmentRemoved)
	m := a.Manifest
	if want := (event.SegmentRemoved{FirstIndex: 0, NextIndex: m.Next.FirstIndex, LastHash: m.Next.Prev, Through: m.Next.Seq,
		CheckpointSize: uint64(a.Checkpoint.Size), CheckpointRoot: a.Checkpoint.Root.String(), EventsSHA256: m.EventsSHA256,
		RetentionDays: 30}); *sr != want {
		t.Fatalf("SegmentRemoved %+v, want %+v", *sr, want)
	}
	if err := r.EventsFrom(ctx, 0, func(event.Record) error { return nil }); !errors.As(err, new(*ledger.MissingSegmentError)) {
		t.Fatalf("reading a removed event: %v, want a MissingSegmentError", err)
	}
	if rep, err := f.Open().AuditAgainst(ctx, nil, nil); err != nil || len(rep.Quarantined) > 0 {
		t.Fatalf("audit from the base: %+v %v", rep, err)
	}

	res, err = Prune(ctx, PruneRequest{Ledger: r, Archive: a, Retention: 30 * day, Now: later})
	if err != nil || res.Recorded || len(res.Streams) != 0 {
		t.Fatalf("Prune again = %+v, %v; want nothing done", res, err)
	}
	if n := len(removals(t, f.Open())); n != 1 {
		t.Fatalf("Prune again recorded another removal: %d SegmentRemoved events", n)
	}
}

// Prune refuses, changing nothing, a removal the live ledger does not
// allow: events inside the retention, an archive ending inside a segment
// (or in the one being written), one that is not of this ledger, one that
// does not start at the live base.
func TestPruneRefuses(t *testing.T) {
	f := newFixture(t, 10) // the segment being written holds the last two messages
	stranger := newFixture(t, 9)
	ctx := context.Background()
	whole := f.archive(f.L, f.before(5), true)
	first := f.archive(f.L, f.before(3), true) // a shorter one, stale once whole is pruned
	if first.Manifest.Next.FirstIndex >= whole.Manifest.Next.FirstIndex {
		t.Fatalf("the fixture's archives end at %d and %d", first.Manifest.Next.FirstIndex, whole.Manifest.Next.FirstIndex)
	}
	inside := f.archive(f.L, f.before(3), false)
	everything := f.archive(f.L, f.before(len(f.Recs)), false)
	for _, a := range []segment.Archive{inside, everything} {
		if slices.Contains(sealedEnds(t, f.L), a.Manifest.Next.Seq) {
			t.Fatalf("the fixture's archive that should end inside a segment ends at one's end (stream sequence %d)", a.Manifest.Next.Seq)
		}
	}
	foreign := stranger.archive(stranger.L, stranger.before(5), true)

	l := f.Restart()
	refuse := func(name string, a segment.Archive, now time.Time, want error, wantEnd bool) {
		t.Helper()
		removed, base := len(removals(t, f.Open())), l.Base()
		_, err := Prune(ctx, PruneRequest{Ledger: l, Archive: a, Retention: 30 * day, Now: now})
		var refused *RefusedError
		if !errors.As(err, &refused) {
			t.Fatalf("%s: Prune = %v, want a refusal", name, err)
		}
		if want != nil && !errors.Is(err, want) {
			t.Errorf("%s: Prune = %v, want %v", name, err, want)
		}
		if got := errors.As(err, new(*SegmentEndError)); got != wantEnd {
			t.Errorf("%s: Prune = %v: a SegmentEndError: %v, want %v", name, err, got, wantEnd)
		}
		l = f.Open()
		if n := len(removals(t, f.Open())); n != removed || !l.Base().Equal(base) {
			t.Fatalf("%s: a refused Prune recorded %d removals, base %+v", name, n, l.Base())
		}
	}
	refuse("inside the retention", whole, t0.Add(10*day), segment.ErrRetention, false)
	refuse("ends inside a segment", inside, later, nil, true)
	refuse("ends in the segment being written", everything, later, nil, true)
	refuse("another ledger's archive", foreign, later, segment.ErrNotArchive, false)

	if _, err := Prune(ctx, PruneRequest{Ledger: l, Archive: whole, Retention: 30 * day, Now: later}); err != nil {
		t.Fatal(err)
	}
	l = f.Open()
	refuse("an archive before the live base", first, later, segment.ErrNotArchive, false)
}

// A crash between Prune's steps loses nothing and leaves nothing half
// done: after the SegmentRemoved event but before the base, a new run
// records the removal again and finishes; after the base but before the
// streams are deleted, a new run only deletes them.
func TestPruneFinishesAfterACrash(t *testing.T) {
	ctx := context.Background()
	t.Run("after the event", func(t *testing.T) {
		f := newFixture(t, 9)
		a := f.archive(f.L, f.before(5), true)
		before := segmentNames(t, f.L)
		l := f.Restart()
		req := PruneRequest{Ledger: l, Archive: a, Retention: 30 * day, Now: later}
		// The first steps of recordRemoval, then a crash.
		head, err := l.Replay(ctx, chain.Head{}, func(event.Record) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		l.Start(head)
		if err := checkRemoval(ctx, req); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(ctx, removalEvent(a, req.Retention, req.Now)); err != nil {
			t.Fatal(err)
		}
		l.Close()

		l = f.Open()
		if !l.Base().Empty() || !slices.Equal(segmentNames(t, l), before) {
			t.Fatalf("the crash stored base %+v and left segments %v", l.Base(), segmentNames(t, l))
		}
		res, err := Prune(ctx, PruneRequest{Ledger: l, Archive: a, Retention: 30 * day, Now: later})
		if err != nil || !res.Recorded || len(res.Streams) == 0 {
			t.Fatalf("Prune after the crash = %+v, %v", res, err)
		}
		r := f.Open()
		rms := removals(t, f.Open())
		if !r.Base().Equal(a.Manifest.Next) || len(rms) != 2 || rms[1].Event.Index != res.Event {
			t.Fatalf("after the crash and a second run: base %+v, %d SegmentRemoved events (want 2, the base naming the second)", r.Base(), len(rms))
		}
	})
	t.Run("after the base", func(t *testing.T) {
		f := newFixture(t, 9)
		a := f.archive(f.L, f.before(5), true)
		before := segmentNames(t, f.L)
		l := f.Restart()
		req := PruneRequest{Ledger: l, Archive: a, Retention: 30 * day, Now: later}
		rec, err := recordRemoval(ctx, req) // then a crash: no stream deleted
		if err != nil {
			t.Fatal(err)
		}
		l = f.Open()
		if !l.Base().Equal(a.Manifest.Next) || !slices.Equal(segmentNames(t, l), before) {
			t.Fatalf("after the base: base %+v, segments %v", l.Base(), segmentNames(t, l))
		}
		res, err := Prune(ctx, PruneRequest{Ledger: l, Archive: a, Retention: 30 * day, Now: later})
		if err != nil || res.Recorded || len(res.Streams) == 0 {
			t.Fatalf("Prune after the crash = %+v, %v; want only the deletion", res, err)
		}
		rms := removals(t, f.Open())
		if len(rms) != 1 || rms[0].Event.Index != rec.Event.Index {
			t.Fatalf("%d SegmentRemoved events after finishing, want the one recorded before the crash", len(rms))
		}
	})
}

// keptCheckpoints records what Prune keeps (checkpoint.Store.Keep).
type keptCheckpoints struct{ signed [][]byte }

func (k *keptCheckpoints) Keep(_ context.Context, signed []byte) error {
	k.signed = append(k.signed, bytes.Clone(signed))
	return nil
}
