package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Batched direct gets: the bulk reader. One request asks the stream for up
// to directBatch messages from a sequence ($JS.API.DIRECT.GET.<stream>
// with {"seq","batch"}, nats-server 2.11+); the server streams them to the
// requester's own inbox and ends with an end-of-batch status. No consumer
// is created, so a read-only identity needs no consumer API, whose push
// consumers would let it name a subject the server then publishes to.

const (
	// directBatch is how many messages one batched direct get asks for.
	directBatch = 1024
	// directBatchBytes bounds one batch's payload (the server stops after
	// the message that crosses it), well under a subscription's pending
	// limit.
	directBatchBytes = 16 << 20
)

// Status codes of a batched direct get's control messages.
const (
	statusEndOfBatch = "204"
	statusNotFound   = "404"
)

// batchMsg is a message of a batched direct get.
type batchMsg struct{ m *nats.Msg }

func (b batchMsg) Data() []byte         { return b.m.Data }
func (b batchMsg) Headers() nats.Header { return b.m.Header }

// directBatchRequest is the body of a batched direct get.
type directBatchRequest struct {
	Seq      uint64 `json:"seq"`
	Batch    int    `json:"batch"`
	MaxBytes int    `json:"max_bytes"`
}

// readBatched streams from..last of segment s with batched direct gets. A
// sequence the server skips or does not send is asked for directly (of
// the stream leader, in a cluster), which either reads it or names it.
func (l *Ledger) readBatched(ctx context.Context, s *segStream, from, last uint64, info *jetstream.StreamInfo, fn func(m storedMsg, seq uint64) error) error {
	next := from
	for next <= last {
		got, err := l.directBatch(ctx, s, next, last, fn)
		if err != nil {
			return err
		}
		if got > next {
			next = got
			continue
		}
		// Nothing from next (a replica behind the leader, a stall, or a
		// message the stream cannot produce): ask for it alone.
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

// directBatch asks for one batch from next and passes its messages, in
// sequence, to fn; it returns the sequence after the last it passed. It
// stops early at a skipped sequence (the caller asks for that one alone).
func (l *Ledger) directBatch(ctx context.Context, s *segStream, next, last uint64, fn func(m storedMsg, seq uint64) error) (uint64, error) {
	nc := l.js.Conn()
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return next, fmt.Errorf("ledger: reader: %w", err)
	}
	defer sub.Unsubscribe()
	req, _ := json.Marshal(directBatchRequest{Seq: next, Batch: int(min(last-next+1, directBatch)), MaxBytes: directBatchBytes})
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+s.name, inbox, req); err != nil {
		return next, fmt.Errorf("ledger: reader: %w", err)
	}
	for next <= last {
		sctx, cancel := context.WithTimeout(ctx, readStall)
		m, err := sub.NextMsgWithContext(sctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return next, fmt.Errorf("ledger: reading stream: %w", ctx.Err())
		case errors.Is(err, context.DeadlineExceeded):
			return next, nil // stalled: the caller asks directly
		case err != nil:
			return next, fmt.Errorf("ledger: reading stream: %w", err)
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case statusEndOfBatch, statusNotFound:
			return next, nil
		default:
			return next, fmt.Errorf("ledger: reading stream %s: direct get: status %s %s", s.name, status, m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get(nats.JSSequence), 10, 64)
		if err != nil {
			return next, fmt.Errorf("ledger: reading stream %s: direct get without a sequence", s.name)
		}
		if seq != next {
			return next, nil // skipped (or repeated): the caller finds out why
		}
		if err := fn(batchMsg{m}, seq); err != nil {
			return next, err
		}
		next++
	}
	return next, nil
}
