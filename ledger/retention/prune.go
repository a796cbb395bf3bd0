package retention

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
	"github.com/keyledger/keyledger/ledger/segment"
)

// PruneRequest asks Prune to remove the segments an archive holds.
type PruneRequest struct {
	// Ledger is the live ledger, opened with the deployment's writer key
	// (ledger.Config.Writer) and not started: Prune replays it, starts it
	// to append the SegmentRemoved event, and closes it.
	Ledger *ledger.Ledger
	// Archive is the archive holding the events to remove, opened (and so
	// verified) with the deployment's checkpoint verifier key.
	Archive segment.Archive
	// Retention is how old every archived event must be.
	Retention time.Duration
	// Now is when the retention is measured from, and the time of the
	// SegmentRemoved event; zero means time.Now().
	Now time.Time
	// Checkpoints, if set, is the deployment's checkpoint store: the
	// archive's signed checkpoint, which the SegmentRemoved event names, is
	// kept there for good (checkpoint.Thinning) before the event is
	// recorded.
	Checkpoints interface {
		Keep(ctx context.Context, signed []byte) error
	}
}

// PruneResult is what Prune did.
type PruneResult struct {
	// Recorded reports that this run appended the SegmentRemoved event
	// (and stored the base); false when an earlier run had, and this one
	// only deleted what was left.
	Recorded bool
	Event    uint64   // the SegmentRemoved event's index, when Recorded
	Streams  []string // the segment streams deleted
}

// RefusedError is a removal Prune refused before changing anything.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// SegmentEndError means the archive does not end where a sealed segment
// does: it ends inside one, or in the segment being written. Prune
// returns it inside a *RefusedError.
type SegmentEndError struct {
	Seq uint64 // the archive's last stream sequence
	Err error  // why the segments could not be read, if that is why
}

func (e *SegmentEndError) Error() string {
	msg := fmt.Sprintf("retention: the archive ends at stream sequence %d, which does not end a sealed segment", e.Seq)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *SegmentEndError) Unwrap() error { return e.Err }

// Prune removes the whole segments req.Archive holds from the live
// ledger, in this order: it checks the removal (segment.Removal: the
// archive starts at the live base and ends at an event the live ledger
// holds with the same hash; its events are older than the retention;
// its end is the end of a sealed segment) and refuses with a
// *RefusedError; appends a SegmentRemoved event and waits for its
// acknowledgement; stores the new base, signed; deletes the segment
// streams. A run that finds the base already stored (an earlier run
// stopped after storing it) goes straight to deleting. A run that stopped
// after the append but before the base was stored records the removal
// again: a second SegmentRemoved event for the same segments, the one the
// stored base names.
//
// An error after the append says which steps were done; running Prune
// again finishes the rest.
func Prune(ctx context.Context, req PruneRequest) (PruneResult, error) {
	if req.Now.IsZero() {
		req.Now = time.Now()
	}
	var res PruneResult
	if !req.Ledger.Base().Equal(req.Archive.Manifest.Next) {
		rec, err := recordRemoval(ctx, req)
		if err != nil {
			return res, err
		}
		res.Recorded, res.Event = true, rec.Pos
	}
	names, err := req.Ledger.DeleteSegmentsThrough(ctx)
	res.Streams = names
	if err != nil {
		return res, fmt.Errorf("the removal is recorded but the segments are not all deleted (run again): %w", err)
	}
	return res, nil
}

// recordRemoval checks the removal, appends its SegmentRemoved event and
// stores the new base.
func recordRemoval(ctx context.Context, req PruneRequest) (event.Record, error) {
	l, a := req.Ledger, req.Archive
	head, err := l.Replay(ctx, chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		return event.Record{}, err
	}
	l.Start(head)
	defer l.Close()
	if err := checkRemoval(ctx, req); err != nil {
		return event.Record{}, err
	}
	if req.Checkpoints != nil {
		signed, err := os.ReadFile(filepath.Join(a.Dir, offline.CheckpointFile))
		if err == nil {
			err = req.Checkpoints.Keep(ctx, signed)
		}
		if err != nil {
			return event.Record{}, fmt.Errorf("keeping the archive's checkpoint: %w", err)
		}
	}
	tree, err := tiledFrontier(l, a)
	if err != nil {
		return event.Record{}, err
	}
	rec, err := l.Append(ctx, removalEvent(a, req.Retention, req.Now))
	if err != nil {
		return event.Record{}, fmt.Errorf("recording the removal: %w", err)
	}
	if err := l.StoreBase(ctx, a.Manifest.Next, tree, rec); err != nil {
		return rec, fmt.Errorf("the removal is recorded (event %d) but the base is not stored (run again): %w", rec.Pos, err)
	}
	return rec, nil
}

// checkRemoval refuses a removal the live ledger does not allow.
func checkRemoval(ctx context.Context, req PruneRequest) error {
	l, a := req.Ledger, req.Archive
	rm := segment.Removal{Archive: a, Live: l.Base(), Now: req.Now, Retention: req.Retention,
		HashAt: func(index uint64) (string, uint64, error) { return hashAt(ctx, l, index) }}
	if err := rm.Check(); err != nil {
		return &RefusedError{Err: err}
	}
	through := a.Manifest.Next.Seq
	if ok, err := l.SegmentEnds(ctx, through); err != nil || !ok {
		return &RefusedError{Err: &SegmentEndError{Seq: through, Err: err}}
	}
	return nil
}

// hashAt is the hash (hex) of the live ledger's event at index, and the
// stream sequence of the message holding it.
func hashAt(ctx context.Context, l *ledger.Ledger, index uint64) (string, uint64, error) {
	var hash string
	var seq uint64
	stop := errors.New("found")
	err := l.EventsFrom(ctx, index, func(r event.Record) error {
		if r.Pos == index {
			hash, seq = hex.EncodeToString(r.Hash[:]), r.Seq
		}
		return stop
	})
	if errors.Is(err, stop) && hash != "" {
		return hash, seq, nil
	}
	return "", 0, fmt.Errorf("no event %d (%v)", index, err)
}

// removalEvent is the SegmentRemoved event recording that the archive's
// events leave the live ledger: named by its signed checkpoint and its
// events' digest, so an auditor holding the archive can tell it is the one.
func removalEvent(a segment.Archive, retention time.Duration, now time.Time) *event.Event {
	m, cp := a.Manifest, a.Checkpoint
	return &event.Event{Time: now.UTC(), Operation: "RemoveSegment",
		Body: &event.SegmentRemoved{FirstIndex: m.Base.FirstIndex, NextIndex: m.Next.FirstIndex, LastHash: m.Next.Prev,
			Through: m.Next.Seq, CheckpointSize: uint64(cp.Size), CheckpointRoot: cp.Root.String(),
			EventsSHA256: m.EventsSHA256, RetentionDays: uint64(retention / (24 * time.Hour))}}
}

// tiledFrontier continues the ledger's tiled Merkle tree from its base
// through the archived events: the frontier the live tree has at the new
// base, checked against the archive's own tree.
func tiledFrontier(l *ledger.Ledger, a segment.Archive) (merkle.Frontier, error) {
	t, err := l.TiledTree(merkle.NewMemoryStore(), 1)
	if err != nil {
		return merkle.Frontier{}, err
	}
	events, err := os.ReadFile(filepath.Join(a.Dir, offline.EventsFile))
	if err != nil {
		return merkle.Frontier{}, err
	}
	for _, raw := range bytes.Split(bytes.TrimSuffix(events, []byte("\n")), []byte("\n")) {
		if err := t.Append(raw); err != nil {
			return merkle.Frontier{}, err
		}
	}
	n := int64(a.Manifest.Next.FirstIndex)
	want, err := a.Span.Tree.Root(n)
	if err != nil {
		return merkle.Frontier{}, err
	}
	f := t.Frontier()
	if f.Size != n {
		return merkle.Frontier{}, fmt.Errorf("the archive's events end at %d, not at its next base %d", f.Size, n)
	}
	// From the first event the tree holds every hash (its tiles pending in
	// memory): its root must be the archive's. Continued from a base it
	// lacks the tiles before it; start-up checks the frontier against the
	// base's root with the deployment's tiles (Ledger.CheckBaseTree).
	if l.FirstIndex() == 0 {
		if got, err := t.Root(n); err != nil || got != want {
			return merkle.Frontier{}, fmt.Errorf("the tiled tree over the archive does not have the archive's root at %d (%v)", n, err)
		}
	}
	return f, nil
}
