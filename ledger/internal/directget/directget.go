// Package directget reads many messages of a JetStream stream with batched
// direct gets ($JS.API.DIRECT.GET.<stream>, nats-server 2.11+): one request
// asks for up to a batch of messages from a sequence, optionally only
// those on a subject; the server streams them to the requester's own inbox
// and ends with an end-of-batch status. No consumer is created, so a
// read-only NATS identity needs no consumer API (whose push consumers
// would let it name a subject the server then publishes to).
//
// A Batch call holds one subscription on a fresh inbox for its duration;
// calls are independent and safe to make concurrently.
package directget

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// MaxBatch is the most messages one request asks for.
const MaxBatch = 1024

// MaxBytes bounds one batch's payload (the server stops after the message
// that crosses it), well under a subscription's pending limit (64 MiB).
const MaxBytes = 16 << 20

// ErrStop, returned by a Batch callback, ends the batch early without error.
var ErrStop = errors.New("directget: stop")

// Request is a batched direct get.
type Request struct {
	Seq     uint64 `json:"seq,omitempty"`          // the first sequence to consider
	Subject string `json:"next_by_subj,omitempty"` // only messages on this subject (wildcards allowed)
	Batch   int    `json:"batch"`                  // at most this many messages (≤ MaxBatch)
	// MaxBytes bounds the batch's payload: the server stops after the
	// message that crosses it. 0 (or more than MaxBytes) is MaxBytes.
	MaxBytes int `json:"max_bytes"`
	// Patience, when set, is how long the first message may take; stall
	// then applies between messages. Any replica of a clustered stream
	// answers a direct get, including one cut off from its cluster, which
	// is still offered requests until the routes to it fail and answers
	// none: the caller asks elsewhere after Patience rather than stall.
	Patience time.Duration `json:"-"`
}

// Result says how a batch ended.
type Result struct {
	// Last is the sequence of the last message passed to the callback (0: none).
	Last uint64
	// Ended is true when the server ended the batch (or had nothing from
	// Seq); false when it stalled or the callback stopped it.
	Ended bool
	// Pending is how many matching messages the server said remain after
	// the batch (meaningful when Ended after at least one message).
	Pending uint64
	// Stalled is true when nothing arrived for a wait (Patience before the
	// first message, stall after).
	Stalled bool
}

// Batch sends req to stream and calls fn for each message the server
// streams back, in order, until the batch ends, fn returns an error
// (ErrStop: ends it quietly), ctx ends, or nothing arrives for stall.
func Batch(ctx context.Context, nc *nats.Conn, stream string, req Request, stall time.Duration, fn func(m *nats.Msg, seq uint64) error) (Result, error) {
	var res Result
	req.Batch = min(max(req.Batch, 1), MaxBatch)
	if req.MaxBytes <= 0 || req.MaxBytes > MaxBytes {
		req.MaxBytes = MaxBytes
	}
	if req.Seq == 0 && req.Subject == "" {
		req.Seq = 1
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return res, err
	}
	defer sub.Unsubscribe()
	body, _ := json.Marshal(req)
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, body); err != nil {
		return res, err
	}
	wait := stall
	if req.Patience > 0 {
		wait = req.Patience
	}
	for {
		sctx, cancel := context.WithTimeout(ctx, wait)
		m, err := sub.NextMsgWithContext(sctx)
		cancel()
		wait = stall
		switch {
		case ctx.Err() != nil:
			return res, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			res.Stalled = true
			return res, nil
		case err != nil:
			return res, err
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "204": // end of batch
			res.Ended = true
			res.Pending, _ = strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return res, nil
		case "404": // nothing from Seq
			res.Ended = true
			return res, nil
		default:
			return res, fmt.Errorf("directget: stream %s: status %s %s", stream, status, m.Header.Get("Description"))
		}
		if serverHeader(m.Header, nats.JSStream) != stream {
			// Not this stream's answer: one another client with the same
			// NATS account had the server send to our inbox. The real
			// answer still comes.
			continue
		}
		seq, err := strconv.ParseUint(serverHeader(m.Header, nats.JSSequence), 10, 64)
		if err != nil {
			return res, fmt.Errorf("directget: stream %s: a message without a sequence", stream)
		}
		if err := fn(m, seq); err != nil {
			if errors.Is(err, ErrStop) {
				return res, nil
			}
			return res, err
		}
		res.Last = seq
	}
}

// serverHeader is the value nats-server set for key. A stored message may
// carry headers of the same name (whoever could publish to the stream
// chose them); the server appends its own after them, so the last value
// is the server's.
func serverHeader(h nats.Header, key string) string {
	v := h.Values(key)
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// ErrNotFound is Get's answer for a sequence the stream does not hold.
var ErrNotFound = errors.New("directget: no message at that sequence")

// Get reads the message at seq by a single direct get. Its headers are
// the stored message's followed by the server's (Nats-Stream,
// Nats-Sequence, Nats-Subject, Nats-Time-Stamp): read those with
// ServerHeader, never with Header.Get, which takes the first value, one
// the publisher may have chosen.
func Get(ctx context.Context, nc *nats.Conn, stream string, seq uint64) (*nats.Msg, error) {
	body, _ := json.Marshal(map[string]uint64{"seq": seq})
	m, err := nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream, body)
	if err != nil {
		return nil, err
	}
	switch status := m.Header.Get("Status"); status {
	case "":
	case "404":
		return nil, ErrNotFound
	default:
		return nil, fmt.Errorf("directget: stream %s: status %s %s", stream, status, m.Header.Get("Description"))
	}
	if ServerHeader(m.Header, nats.JSStream) != stream {
		return nil, fmt.Errorf("directget: stream %s: an answer from another stream", stream)
	}
	if got, err := strconv.ParseUint(ServerHeader(m.Header, nats.JSSequence), 10, 64); err != nil || got != seq {
		return nil, fmt.Errorf("directget: stream %s: asked for sequence %d, got %q", stream, seq, ServerHeader(m.Header, nats.JSSequence))
	}
	return m, nil
}

// ServerHeader is the value nats-server set for key on a message it
// served (see serverHeader).
func ServerHeader(h nats.Header, key string) string { return serverHeader(h, key) }
