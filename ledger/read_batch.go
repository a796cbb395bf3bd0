package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/internal/directget"
)

// batchMsg is a message of a batched direct get.
type batchMsg struct{ m *nats.Msg }

func (b batchMsg) Data() []byte         { return b.m.Data }
func (b batchMsg) Headers() nats.Header { return b.m.Header }
func (b batchMsg) Subject() string      { return directget.ServerHeader(b.m.Header, nats.JSSubject) }

// readBatchBytes bounds one batch of a bulk read (the payload the server
// sends before it ends the batch). A batch is held up to three times at
// once — queued by the server, pending on the connection, and read ahead
// while the previous one is folded — so it sets the memory a walk of the
// whole history takes (the background verifier after every start),
// whatever the history's length. 2 MiB is about a hundred group commits
// under load: round trips stay a small part of a walk's time.
const readBatchBytes = 2 << 20

// fetched is one batch read ahead: the messages from its first sequence on,
// in order and without a gap, up to where it ended.
type fetched struct {
	msgs []*nats.Msg
	// more: the server ended the batch (at its byte bound) with messages
	// left after it; the next batch goes on from where it stopped.
	more bool
	err  error
}

// fetch reads up to one batch from `from` (at most to last) in the
// background; the caller folds the previous batch meanwhile.
func (l *Ledger) fetch(ctx context.Context, s *segStream, from, last uint64) <-chan fetched {
	out := make(chan fetched, 1)
	go func() {
		var f fetched
		next := from
		// A batch whose first message is not there within its patience
		// went to a replica that does not answer (rawMsgIn): the reader
		// asks the leader for that message and batches on after it.
		req := directget.Request{Seq: from, Batch: int(min(last-from+1, directget.MaxBatch)), MaxBytes: readBatchBytes,
			Patience: l.batchPatience()}
		res, err := directget.Batch(ctx, l.js.Conn(), s.name, req, readStall,
			func(m *nats.Msg, seq uint64) error {
				if seq != next || seq > last {
					return directget.ErrStop // skipped: asked for alone by the reader
				}
				f.msgs = append(f.msgs, m)
				next++
				return nil
			})
		f.err = err
		f.more = res.Ended && res.Pending > 0 && len(f.msgs) > 0
		if res.Stalled && len(f.msgs) == 0 {
			l.shunDirect() // the reader asks the leader for the next message
		}
		out <- f
	}()
	return out
}

// shunnedPatience is how long the first message of a batch may take while
// direct gets are shunned (read.go): a replica that did not answer lately
// is offered about one batch in three again (nats-server picks at random,
// for minutes if its interest rides an idle pooled route, which no write
// deadline closes), a live one answers in milliseconds, and a miss costs
// one get from the leader. The follower of the slower instance reads a
// run of the other's messages for almost every request it answers.
const shunnedPatience = 25 * time.Millisecond

// batchPatience is how long the first message of a batch may take.
func (l *Ledger) batchPatience() time.Duration {
	if time.Now().UnixNano() < l.directShunned.Load() {
		return shunnedPatience
	}
	return directGetPatience
}

// readBatched streams from..last of segment s with batched direct gets
// (no consumer: a read-only identity needs no consumer API), reading one
// batch ahead. A sequence the server skips or does not send is asked for
// alone (of the stream leader, in a cluster), which either reads it or
// names it.
func (l *Ledger) readBatched(ctx context.Context, s *segStream, from, last uint64, info *jetstream.StreamInfo, fn func(m storedMsg, seq uint64) error) error {
	ctx, cancel := context.WithCancel(ctx)
	next := from
	ahead := l.fetch(ctx, s, next, last)
	defer func() {
		// End a read-ahead nobody will use, and wait for it: its
		// subscription must be gone before the caller goes on (a CLI that
		// stops early closes the connection next, and a drain that finds
		// a subscription made meanwhile reports a timeout).
		cancel()
		if ahead != nil {
			<-ahead
		}
	}()
	for next <= last {
		f := <-ahead
		ahead = nil
		if f.err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("ledger: reading stream: %w", ctx.Err())
			}
			return fmt.Errorf("ledger: reading stream %s: %w", s.name, f.err)
		}
		end := next + uint64(len(f.msgs)) // where this batch stops
		if end <= last && (len(f.msgs) == directget.MaxBatch || f.more) {
			ahead = l.fetch(ctx, s, end, last) // a full batch: read on meanwhile
		}
		for _, m := range f.msgs {
			if err := fn(batchMsg{m}, next); err != nil {
				return err
			}
			next++
		}
		if next > last {
			return nil
		}
		if ahead != nil {
			continue
		}
		// The batch ended, stalled or skipped before last (a replica behind
		// the leader, or a message the stream cannot produce): ask for next alone, then go on batching after it.
		m, err := l.getMsgIn(ctx, s, next, info)
		if err != nil {
			return err
		}
		if err := fn(m, next); err != nil {
			return err
		}
		next++
		if next <= last {
			ahead = l.fetch(ctx, s, next, last)
		}
	}
	return nil
}
