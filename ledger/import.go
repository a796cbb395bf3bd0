package ledger

import (
	"context"
	"errors"
	"io"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
)

// ErrNotEmpty means Import was asked to write into a stream that already
// holds events.
var ErrNotEmpty = errors.New("ledger: the stream is not empty")

// ErrImportWriter means Import was not given the key of the ledger's first
// registered writer, so the imported messages could not be signed.
var ErrImportWriter = errors.New("ledger: import needs the key of the ledger's first writer")

// Import writes events (each one's exact stored bytes, in chain order from
// index 0) into an empty stream, as a restore from a backup does, and
// returns the new head. Each event must link to the one before, so an
// imported chain verifies exactly as the original did; events are packed
// into group-commit-sized messages, so stream sequences may differ from
// the original's (nothing outside the stream refers to them). Call it
// after Open and before Replay and Start.
//
// Messages are signed as the folding rule requires (see chain.Folder):
// those before the ledger's first WriterRegistered event go unsigned, as
// they were written; that event starts a message of its own, and it and
// every message after it are signed with the configured writer key, which
// must therefore be the ledger's first writer (the deployment's escrowed
// writer key). Otherwise Import fails with ErrImportWriter.
func (l *Ledger) Import(ctx context.Context, events [][]byte) (chain.Head, error) {
	i := 0
	return l.ImportFrom(ctx, func() ([]byte, error) {
		if i == len(events) {
			return nil, io.EOF
		}
		i++
		return events[i-1], nil
	})
}

// registersWriter reports whether raw is a WriterRegistered event.
func registersWriter(raw []byte) bool {
	ev, err := event.Decode(raw)
	if err != nil {
		return false
	}
	_, ok := ev.Body.(*event.WriterRegistered)
	return ok
}
