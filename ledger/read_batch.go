package ledger

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/internal/directget"
)

// batchMsg is a message of a batched direct get.
type batchMsg struct{ m *nats.Msg }

func (b batchMsg) Data() []byte         { return b.m.Data }
func (b batchMsg) Headers() nats.Header { return b.m.Header }

// readBatched streams from..last of segment s with batched direct gets
// (no consumer: a read-only identity needs no consumer API). A sequence
// the server skips or does not send is asked for alone (of the stream
// leader, in a cluster), which either reads it or names it.
func (l *Ledger) readBatched(ctx context.Context, s *segStream, from, last uint64, info *jetstream.StreamInfo, fn func(m storedMsg, seq uint64) error) error {
	next := from
	var fnErr error // fn's own error, passed on unchanged
	for next <= last {
		_, err := directget.Batch(ctx, l.js.Conn(), s.name, directget.Request{Seq: next, Batch: int(min(last-next+1, directget.MaxBatch))}, readStall,
			func(m *nats.Msg, seq uint64) error {
				if seq != next || seq > last {
					return directget.ErrStop // skipped: asked for alone below
				}
				if fnErr = fn(batchMsg{m}, seq); fnErr != nil {
					return fnErr
				}
				next++
				return nil
			})
		if fnErr != nil {
			return fnErr
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("ledger: reading stream: %w", ctx.Err())
			}
			return fmt.Errorf("ledger: reading stream %s: %w", s.name, err)
		}
		if next > last {
			return nil
		}
		// The batch ended, stalled or skipped before last (a replica behind
		// the leader, or a message the stream cannot produce): ask for next
		// alone, then go on batching after it.
		m, err := l.getMsgIn(ctx, s, next, info)
		if err != nil {
			return err
		}
		if err := fn(m, next); err != nil {
			return err
		}
		next++
	}
	return nil
}
