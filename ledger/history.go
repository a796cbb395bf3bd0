package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
)

// Reading the history back: the raw messages (for chain.Verify and
// audits), events by position or time (EventsFrom, EventsSince: what a
// subscriber that missed live events resumes from), one event's hash (to
// check a snapshot still names the ledger's event) and the exact stored
// bytes under a Merkle tree (Leaves, LeavesFrom). Readers show what the
// fold accepted, and skip what it quarantined.

// Messages yields every message of the live ledger (after removed
// segments, from the first after them) in order, with its writer headers
// (chain.Source). Fold them from Folder().
func (l *Ledger) Messages(ctx context.Context, fn func(chain.Message) error) error {
	return l.messagesAfter(ctx, l.base.Seq, func(m storedMsg, seq uint64) error { return fn(l.message(m, seq)) })
}

// EventsFrom calls fn for every committed event at position >= from (its
// place in stream order, on every chain: event.Record.Pos), in order, up
// to what this instance folded when called. It starts at the nearest
// position anchor the fold left at or before from (anchors.go) and does
// not re-check links (the fold did).
func (l *Ledger) EventsFrom(ctx context.Context, from uint64, fn func(event.Record) error) error {
	if b := l.base; !b.Empty() && from < b.FirstIndex {
		return &MissingSegmentError{Stream: l.cfg.Stream, From: 1, To: b.Seq, Base: b.Seq}
	}
	if err := l.ensureFolded(ctx); err != nil {
		return err
	}
	a := l.anchorAtOrBefore(func(a anchor) bool { return a.pos <= from })
	return l.eventsAfterSeq(ctx, a.seq-1, a.pos, func(r event.Record) error {
		if r.Pos < from {
			return nil
		}
		return fn(r)
	})
}

// EventsSince calls fn for every committed event stored at or after since.
func (l *Ledger) EventsSince(ctx context.Context, since time.Time, fn func(event.Record) error) error {
	if err := l.ensureFolded(ctx); err != nil {
		return err
	}
	seq, err := l.seqAtOrBefore(ctx, since)
	if err != nil || seq == 0 {
		return err
	}
	if b := l.base; !b.Empty() && seq == b.Seq+1 {
		// Events since then may have been in the removed segments.
		if _, t, err := l.firstIndex(ctx, seq, seq); err == nil && t.After(since) {
			return &MissingSegmentError{Stream: l.cfg.Stream, From: 1, To: b.Seq, Base: b.Seq}
		}
	}
	a := l.anchorAtOrBefore(func(a anchor) bool { return a.seq <= seq })
	return l.eventsAfterSeq(ctx, a.seq-1, a.pos, func(r event.Record) error {
		if r.Seq < seq || r.Event.Time.Before(since) {
			return nil
		}
		return fn(r)
	})
}

// eventsAfterSeq reads the accepted events of the messages after stream
// sequence after, the first of which is at position pos, up to what this
// instance folded.
func (l *Ledger) eventsAfterSeq(ctx context.Context, after, pos uint64, fn func(event.Record) error) error {
	end := l.readerEnd()
	done := errors.New("done")
	err := l.messagesAfter(ctx, after, func(m storedMsg, seq uint64) error {
		if seq > end {
			return done
		}
		if !l.authentic(m, seq) {
			return nil // quarantined
		}
		lines, err := event.SplitBatch(m.Data())
		if err != nil {
			return err
		}
		cm := l.message(m, seq)
		for _, raw := range lines {
			ev, err := event.Decode(raw)
			if err != nil {
				return err
			}
			if err := fn(event.Record{Seq: seq, Event: ev, Raw: raw, Hash: event.Of(raw), Pos: pos, Writer: cm.Writer}); err != nil {
				return err
			}
			pos++
		}
		return nil
	})
	if errors.Is(err, done) {
		return nil
	}
	return err
}

// readerEnd is the last stream sequence readers of the history show: what
// this instance folded.
func (l *Ledger) readerEnd() uint64 {
	if l.started.Load() {
		return l.folded.Load()
	}
	return l.foldThrough()
}

// ensureFolded folds the live ledger, if this instance has not started
// following it (a tool that opened it to read), up to the stream's end
// now: readers show only what a fold accepted, and a reader that
// subscribed to the live feed before reading the history must find in it
// every event committed before it read.
func (l *Ledger) ensureFolded(ctx context.Context) error {
	if l.started.Load() {
		return nil
	}
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if l.foldThrough() <= l.base.Seq {
		last, err := l.LastStreamSeq(ctx)
		if err != nil || last <= l.base.Seq {
			return err
		}
		_, err = l.Replay(ctx, chain.Head{}, func(event.Record) error { return nil })
		return err
	}
	return l.messagesAfter(ctx, l.foldThrough(), func(m storedMsg, seq uint64) error {
		l.fmu.Lock()
		defer l.fmu.Unlock()
		l.foldMessage(l.fold, l.message(m, seq))
		return nil
	})
}

// firstIndex returns the index of the first event in stream message seq.
// Quarantined messages are skipped: the next accepted one answers.
func (l *Ledger) firstIndex(ctx context.Context, seq, last uint64) (uint64, time.Time, error) {
	for ; seq < last && l.quarantinedSeq(seq); seq++ {
	}
	m, err := l.rawMsg(ctx, seq)
	if err != nil {
		return 0, time.Time{}, err
	}
	lines, err := event.SplitBatch(m.Data)
	if err != nil {
		return 0, time.Time{}, err
	}
	link, _, err := event.DecodeLink(lines[0])
	return link.Index, m.Time, err
}

// seqAtOrBefore finds, by binary search over the stream, the last message
// stored at or before at; 1 if none is.
func (l *Ledger) seqAtOrBefore(ctx context.Context, at time.Time) (uint64, error) {
	lo, hi, err := l.liveRange(ctx)
	if err != nil {
		return 0, err
	}
	if hi < lo {
		return 0, nil
	}
	best := lo
	for lo <= hi {
		mid := lo + (hi-lo)/2
		_, t, err := l.firstIndex(ctx, mid, hi)
		if err != nil {
			return 0, err
		}
		if !t.After(at) {
			best, lo = mid, mid+1
		} else {
			if mid == 0 {
				break
			}
			hi = mid - 1
		}
	}
	return best, nil
}

// ErrNoEvent means the ledger holds no event at the index and stream
// sequence asked for.
var ErrNoEvent = errors.New("ledger: no such event")

// EventHashAt returns the hash of the event with index stored in the
// message at stream sequence seq, as the ledger holds it now.
func (l *Ledger) EventHashAt(ctx context.Context, seq, index uint64) (event.Hash, error) {
	m, err := l.rawMsg(ctx, seq)
	var missing *MissingSegmentError
	if errors.Is(err, jetstream.ErrMsgNotFound) || errors.As(err, &missing) {
		return event.Hash{}, ErrNoEvent
	}
	if err != nil {
		return event.Hash{}, err
	}
	lines, err := event.SplitBatch(m.Data)
	if err != nil {
		return event.Hash{}, ErrNoEvent
	}
	for _, raw := range lines {
		if link, _, err := event.DecodeLink(raw); err == nil && link.Index == index {
			return event.Of(raw), nil
		}
	}
	return event.Hash{}, ErrNoEvent
}

// Leaves calls fn with the exact stored bytes of every event in the
// messages after the base up to stream sequence through (a tree that
// takes them continues BaseTree), skipping the quarantined ones,
// without decoding them (rebuilding the Merkle tree under a snapshot).
func (l *Ledger) Leaves(ctx context.Context, through uint64, quarantined []uint64, fn func(raw []byte) error) error {
	skip := map[uint64]bool{}
	for _, s := range quarantined {
		skip[s] = true
	}
	if through <= l.base.Seq {
		return nil
	}
	done := errors.New("done")
	err := l.messagesAfter(ctx, l.base.Seq, func(m storedMsg, seq uint64) error {
		if seq > through {
			return done
		}
		if skip[seq] {
			return nil
		}
		lines, err := event.SplitBatch(m.Data())
		if err != nil {
			return fmt.Errorf("ledger: message %d: %w", seq, err)
		}
		for _, raw := range lines {
			if err := fn(raw); err != nil {
				return err
			}
		}
		if seq == through {
			return done
		}
		return nil
	})
	if errors.Is(err, done) {
		return nil
	}
	return err
}

// LeavesFrom calls fn with the exact stored bytes of the n events from
// position first on, skipping quarantined messages as every reader does: the
// leaves under a Merkle tile the tree has to rebuild (merkle.LeafSource).
func (l *Ledger) LeavesFrom(ctx context.Context, first int64, n int, fn func(raw []byte) error) error {
	if first < 0 || n <= 0 {
		return nil
	}
	done := errors.New("done")
	left := n
	err := l.EventsFrom(ctx, uint64(first), func(r event.Record) error {
		if left == 0 {
			return done
		}
		left--
		if err := fn(r.Raw); err != nil {
			return err
		}
		if left == 0 {
			return done
		}
		return nil
	})
	if errors.Is(err, done) {
		return nil
	}
	return err
}
