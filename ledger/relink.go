package ledger

import (
	"encoding/hex"
	"fmt"

	"github.com/keyledger/keyledger/ledger/event"
)

// Two instances appending at once: the loser's batch is refused by
// JetStream and the loser folds the winner's messages (recover). A batch of
// records that change no key state (APICall: reads, cryptographic
// operations, refusals) is then linked after them and published again, so
// a losing instance keeps answering under contention instead of being
// starved by a busy peer. A batch that changes key state was validated
// against the state before the winner's events, so it is refused
// (ErrConflict) and the caller retries against the new state.

// seal re-slices the records' Raw from the final buffer (data may have been
// reallocated while growing) and returns the batch's message ID.
func (b *batch) seal() string {
	off := 0
	for i := range b.recs {
		n := len(b.recs[i].Raw)
		b.recs[i].Raw = b.data[off : off+n : off+n]
		off += n + 1
	}
	return fmt.Sprintf("kl-%d-%s", b.recs[0].Event.Index, hex.EncodeToString(b.recs[0].Hash[:8]))
}

// relinkAfter returns b linked after the head the writer has folded, with
// its message ID: b itself if the head has not moved (only quarantined
// messages took its place), a new batch of the same events if it moved and
// none of them changes key state, ErrConflict otherwise.
func (l *Ledger) relinkAfter(b *batch, msgID string) (*batch, string, error) {
	head := l.fold.Head()
	first := b.recs[0].Event
	if first.Index == head.NextIndex() && first.Prev == head.Hash {
		return b, msgID, nil
	}
	for _, r := range b.recs {
		if _, ok := r.Event.Body.(*event.APICall); !ok {
			return b, msgID, ErrConflict
		}
	}
	nb := newBatch(head)
	for _, p := range b.items {
		if !nb.add(p, l.cfg.MaxBatchBytes) {
			return b, msgID, ErrConflict
		}
	}
	msgID = nb.seal()
	if err := l.mayWrite(nb.recs[0]); err != nil {
		return b, msgID, err
	}
	return nb, msgID, nil
}
