package ledger

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
)

// ErrNotEmpty means Import was asked to write into a stream that already
// holds events.
var ErrNotEmpty = errors.New("ledger: the stream is not empty")

// Import writes events (each one's exact stored bytes, in chain order from
// index 0) into an empty stream, as a restore from a backup does, and
// returns the new head. Each event must link to the one before, so an
// imported chain verifies exactly as the original did; events are packed
// into group-commit-sized messages, so stream sequences may differ from
// the original's (nothing outside the stream refers to them). Call it
// after Open and before Replay and Start.
func (l *Ledger) Import(ctx context.Context, events [][]byte) (chain.Head, error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return chain.Head{}, fmt.Errorf("ledger: stream info: %w", err)
	}
	if info.State.Msgs > 0 || info.State.LastSeq > 0 {
		return chain.Head{}, ErrNotEmpty
	}
	linker := chain.NewLinker(chain.Head{})
	var data []byte
	var first event.Hash
	firstIndex, n := uint64(0), 0
	lastSeq := uint64(0) // of the last message published
	flush := func() error {
		if n == 0 {
			return nil
		}
		msgID := fmt.Sprintf("kl-%d-%s", firstIndex, hex.EncodeToString(first[:8]))
		ack, err := l.publish(ctx, data, msgID, lastSeq)
		if err != nil {
			return fmt.Errorf("ledger: import: %w", err)
		}
		// Every event of the message is now at ack.Sequence.
		lastSeq = ack.Sequence
		h := linker.Head()
		h.Seq = lastSeq
		linker = chain.NewLinker(h)
		data, n = data[:0], 0
		return nil
	}
	for _, raw := range events {
		if n > 0 && (n >= l.cfg.MaxBatchEvents || len(data)+len(raw)+1 > l.cfg.MaxBatchBytes) {
			if err := flush(); err != nil {
				return linker.Head(), err
			}
		}
		h, err := linker.Link(lastSeq+1, raw)
		if err != nil {
			return linker.Head(), err
		}
		if n == 0 {
			first, firstIndex = h, linker.Head().Index
		}
		data = append(append(data, raw...), '\n')
		n++
	}
	if err := flush(); err != nil {
		return linker.Head(), err
	}
	return linker.Head(), nil
}
