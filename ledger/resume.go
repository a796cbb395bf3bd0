package ledger

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
)

// Resume is where a snapshot leaves the fold: its last event, the writers
// registered by then and the messages quarantined before it.
type Resume struct {
	Head        chain.Head
	Writers     map[string]ed25519.PublicKey
	Quarantined []uint64 // stream sequences, all at or before Head.Seq
}

// ReplayFrom is Replay continued from a snapshot: it folds the messages
// after r.Head.Seq (authenticating and linking each to r.Head, quarantining
// what fails) and calls fn for every accepted event. Called before Start,
// it builds the writer's folder. r.Head must be an event the ledger holds
// (EventHashAt).
func (l *Ledger) ReplayFrom(ctx context.Context, r Resume, fn func(event.Record) error) (chain.Head, error) {
	if l.started.Load() {
		return chain.Head{}, errors.New("ledger: ReplayFrom after Start")
	}
	f := chain.ResumeFolder(r.Head, r.Writers)
	l.fold = f
	l.qmu.Lock()
	l.qseqs = map[uint64]bool{}
	l.qfirst = nil
	for _, seq := range r.Quarantined {
		l.qseqs[seq] = true
		if len(l.qfirst) < reportedQuarantines {
			// The reason was found before the snapshot; audit verify finds
			// it again from the message itself.
			l.qfirst = append(l.qfirst, fmt.Sprintf("stream sequence %d: quarantined before the snapshot this start resumed from (keyledger audit verify names why)", seq))
		}
	}
	l.qmu.Unlock()
	l.quarantined.Store(uint64(len(r.Quarantined)))
	l.noteFolded()
	err := l.messagesAfter(ctx, r.Head.Seq, func(m storedMsg, seq uint64) error {
		for _, rec := range l.foldMessage(f, m, seq) {
			if err := fn(rec); err != nil {
				return err
			}
		}
		return nil
	})
	return f.Head(), err
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

// QuarantinedThrough lists the stream sequences quarantined at or before
// seq, in order.
func (l *Ledger) QuarantinedThrough(seq uint64) []uint64 {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	var out []uint64
	for s := range l.qseqs {
		if s <= seq {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// LeavesFrom calls fn with the exact stored bytes of the n events from
// index first on, skipping quarantined messages as every reader does: the
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
