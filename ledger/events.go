package ledger

import (
	"context"
	"time"

	"github.com/keyledger/keyledger/ledger/event"
)

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
// whose first event index (or stored time, when byTime) is at or before
// the target; 1 if none is.
func (l *Ledger) seqAtOrBefore(ctx context.Context, index uint64, at time.Time, byTime bool) (uint64, error) {
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
		idx, t, err := l.firstIndex(ctx, mid, hi)
		if err != nil {
			return 0, err
		}
		before := idx <= index
		if byTime {
			before = !t.After(at)
		}
		if before {
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

// EventsFrom calls fn for every committed event with index >= from, in
// order, up to the ledger's end when called. It does not re-check links
// before from (the caller checks what it needs).
func (l *Ledger) EventsFrom(ctx context.Context, from uint64, fn func(event.Record) error) error {
	if b := l.base; !b.Empty() && from < b.FirstIndex {
		return &MissingSegmentError{Stream: l.cfg.Stream, From: 1, To: b.Seq, Base: b.Seq}
	}
	seq, err := l.seqAtOrBefore(ctx, from, time.Time{}, false)
	if err != nil || seq == 0 {
		return err
	}
	return l.eventsAfterSeq(ctx, seq-1, func(r event.Record) error {
		if r.Event.Index < from {
			return nil
		}
		return fn(r)
	})
}

// EventsSince calls fn for every committed event stored at or after since.
func (l *Ledger) EventsSince(ctx context.Context, since time.Time, fn func(event.Record) error) error {
	seq, err := l.seqAtOrBefore(ctx, 0, since, true)
	if err != nil || seq == 0 {
		return err
	}
	if b := l.base; !b.Empty() && seq == b.Seq+1 {
		// Events since then may have been in the removed segments.
		if _, t, err := l.firstIndex(ctx, seq, seq); err == nil && t.After(since) {
			return &MissingSegmentError{Stream: l.cfg.Stream, From: 1, To: b.Seq, Base: b.Seq}
		}
	}
	return l.eventsAfterSeq(ctx, seq-1, func(r event.Record) error {
		if r.Event.Time.Before(since) {
			return nil
		}
		return fn(r)
	})
}

func (l *Ledger) eventsAfterSeq(ctx context.Context, after uint64, fn func(event.Record) error) error {
	return l.messagesAfter(ctx, after, func(m storedMsg, seq uint64) error {
		if !l.authentic(m, seq) {
			return nil // quarantined, or not signed for its place
		}
		lines, err := event.SplitBatch(m.Data())
		if err != nil {
			return err
		}
		for _, raw := range lines {
			ev, err := event.Decode(raw)
			if err != nil {
				return err
			}
			if err := fn(event.Record{Seq: seq, Event: ev, Raw: raw, Hash: event.Of(raw)}); err != nil {
				return err
			}
		}
		return nil
	})
}
