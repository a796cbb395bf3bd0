package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
)

// The commit path. Append queues an event; the writer goroutine takes
// what is queued into a batch (one JetStream message), links and encodes
// each event as it is added, publishes the batch after the last sequence
// it folded (expected-last-sequence, Nats-Msg-Id), and only once JetStream
// acknowledged it hands the records to OnCommit and releases the waiting
// requests. A publish that fails is followed by a read-back (recover):
// the stream, not the error, says what happened. Between batches an idle
// writer folds what other instances appended (follow). Contention with
// another writer is in contention.go, rolling to a new segment in
// segments.go.

type pending struct {
	ev   *event.Event
	cond func() error // AppendIf's condition; nil for Append
	done chan result
}

type result struct {
	rec event.Record
	err error
}

// Append queues ev (its Index and Prev are set by the writer) and waits until
// it is committed or has failed. The returned record is the stored event.
func (l *Ledger) Append(ctx context.Context, ev *event.Event) (event.Record, error) {
	return l.enqueue(ctx, &pending{ev: ev, done: make(chan result, 1)})
}

// AppendIf appends ev only if cond holds at the place ev takes in the
// chain: the writer calls cond once every event before that place has been
// handed to OnCommit (so cond reads the projections as of exactly that
// head), and starts a batch with ev. If cond fails, its error is returned
// and nothing is stored. JetStream's expected-last-sequence makes the check
// and the append one step: if another instance appended after that head,
// the message is refused and ev is not linked again after the newcomer's
// events (ErrConflict; ask again). cond runs on the writer goroutine: it
// must be quick and must not call Append.
func (l *Ledger) AppendIf(ctx context.Context, ev *event.Event, cond func() error) (event.Record, error) {
	return l.enqueue(ctx, &pending{ev: ev, cond: cond, done: make(chan result, 1)})
}

func (l *Ledger) enqueue(ctx context.Context, p *pending) (event.Record, error) {
	select {
	case l.queue <- p:
	case <-l.stop:
		return event.Record{}, ErrClosed
	case <-ctx.Done():
		return event.Record{}, ctx.Err()
	}
	// Once queued, wait for the outcome regardless of ctx: the writer always
	// settles every event it takes, and callers rely on knowing whether the
	// event is in the ledger.
	select {
	case r := <-p.done:
		return r.rec, r.err
	case <-l.done:
		select {
		case r := <-p.done:
			return r.rec, r.err
		default:
			return event.Record{}, ErrClosed
		}
	}
}

func (l *Ledger) writer() {
	defer close(l.done)
	if l.peerSub != nil {
		defer func() { _ = l.peerSub.Unsubscribe() }()
	}
	var carry *pending // an event that did not fit in the previous batch
	follow := time.NewTicker(l.cfg.FollowInterval)
	defer follow.Stop()
	for {
		b := newBatch(l.head)
		p := carry
		carry = nil
		if p == nil {
			select {
			case p = <-l.queue:
			case <-follow.C:
				l.follow()
				continue
			case <-l.stop:
				l.drain(ErrClosed)
				return
			}
		}
		if !admit(p) {
			continue
		}
		b.add(p, l.cfg.MaxBatchBytes)
		l.yieldToPeers() // what is queued meanwhile joins this batch
	fill:
		for len(b.items) < l.cfg.MaxBatchEvents {
			select {
			case p := <-l.queue:
				if p.cond != nil || !b.add(p, l.cfg.MaxBatchBytes) {
					carry = p // a conditional event starts its own batch
					break fill
				}
			default:
				break fill
			}
		}
		l.commit(b)
	}
}

// admit checks a conditional event's condition against the head the batch
// it starts is linked after, settling the event if it fails.
func admit(p *pending) bool {
	if p.cond == nil {
		return true
	}
	if err := p.cond(); err != nil {
		p.done <- result{err: err}
		return false
	}
	return true
}

// batch is one group commit being built: its events are linked and encoded
// as they are added, into the message that will carry them.
type batch struct {
	items []*pending
	recs  []event.Record
	data  []byte
	next  uint64
	prev  event.Hash
}

func newBatch(head chain.Head) *batch {
	return &batch{next: head.NextIndex(), prev: head.Hash, data: make([]byte, 0, 16<<10)}
}

// add links and encodes p as the next event. It refuses (leaving the batch
// as it was) when the message would outgrow maxBytes, unless the batch is
// empty: a lone oversized event is tried, and fails on its own.
func (b *batch) add(p *pending, maxBytes int) bool {
	start := len(b.data)
	p.ev.Index, p.ev.Prev = b.next, b.prev
	b.data = p.ev.AppendEncoded(b.data)
	if len(b.data)+1 > maxBytes && len(b.items) > 0 {
		b.data = b.data[:start]
		return false
	}
	raw := b.data[start:len(b.data):len(b.data)]
	h := event.Of(raw)
	b.data = append(b.data, '\n')
	b.items = append(b.items, p)
	b.recs = append(b.recs, event.Record{Event: p.ev, Raw: raw, Hash: h})
	b.next, b.prev = b.next+1, h
	return true
}

// seal re-slices the records' Raw from the final buffer (data may have been
// reallocated while growing) and returns the batch's message ID.
func (b *batch) seal() string {
	off := 0
	for i := range b.recs {
		n := len(b.recs[i].Raw)
		b.recs[i].Raw = b.data[off : off+n : off+n]
		off += n + 1
	}
	return messageID(b.recs[0].Event.Index, b.recs[0].Hash)
}

// messageID is the Nats-Msg-Id of the message whose first event has index
// and hash first: JetStream drops a retried publish of the same message.
func messageID(index uint64, first event.Hash) string {
	return fmt.Sprintf("kl-%d-%s", index, hex.EncodeToString(first[:8]))
}

// commit publishes and settles one batch.
func (l *Ledger) commit(b *batch) {
	msgID := b.seal()
	if l.rollDue(l.fold.Through()) {
		ctx, cancel := context.WithTimeout(context.Background(), l.cfg.PublishTimeout)
		err := l.roll(ctx)
		cancel()
		if err != nil {
			l.cfg.Logger.Error("ledger: cannot start a new segment", "error", err)
			if l.segs.current().sealed {
				settle(b.items, nil, err)
				return
			}
		} else if head := l.fold.Head(); b.recs[0].Event.Index != head.NextIndex() || b.recs[0].Event.Prev != head.Hash {
			// The roll folded other writers' messages: link after them.
			var err error
			if b, msgID, err = l.relinkAfter(b, msgID); err != nil {
				settle(b.items, nil, err)
				return
			}
		}
	}
	if err := l.mayWrite(b.recs[0]); err != nil {
		settle(b.items, nil, err)
		return
	}
	if err := l.checkStorage(len(b.data)); err != nil {
		settle(b.items, nil, err)
		return
	}
	// Someone else's garbage taking the next sequence must not stop us: when
	// the only thing between our head and the stream's end is quarantined,
	// publish the same batch again after it. When another writer's events
	// took it, a batch that changes no key state is linked after them
	// (relinkAfter).
	asked := false // peers were asked to wait for this batch
	defer func() {
		if asked {
			l.notifyPeers("done")
		}
	}()
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			var err error
			if b, msgID, err = l.relinkAfter(b, msgID); err != nil {
				settle(b.items, nil, err)
				return
			}
		}
		after := l.fold.Through()
		ack, err := l.publishOrFault(b.data, msgID, after)
		if err == nil {
			l.accept(b.recs, ack.Sequence)
			settle(b.items, b.recs, nil)
			return
		}
		if isSealed(err) {
			// Another instance is rolling: finish the roll with it (sealing
			// and creating are idempotent) rather than spin on the sealed
			// stream, then publish again in the new segment.
			// The sealed stream stored nothing of ours, and the roll folded
			// what it holds: no read-back.
			ctx, cancel := context.WithTimeout(context.Background(), l.cfg.PublishTimeout)
			rerr := l.roll(ctx)
			cancel()
			if rerr != nil {
				l.cfg.Logger.Warn("ledger: following another instance into the next segment", "error", rerr)
			}
			if attempt >= maxRetries {
				settle(b.items, nil, fmt.Errorf("%w (the ledger was starting a new segment)", ErrConflict))
				return
			}
			continue
		}
		if isWrongLastSequence(err) {
			l.notifyPeers("wait")
			asked = true
		}
		retry := l.recover(b.items, b.recs, b.data, msgID, after, err)
		if !retry || attempt >= maxRetries {
			if retry {
				settle(b.items, nil, ErrConflict)
			}
			return
		}
	}
}

// maxRetries bounds how often one batch is republished after quarantined
// messages or another writer's events took its place.
const maxRetries = 8

// mayWrite refuses a batch the ledger would quarantine: signed by a key it
// has not registered (the first writer registers itself in its first
// message; an unsigned ledger takes no unsigned message once a writer is
// registered).
func (l *Ledger) mayWrite(first event.Record) error {
	w := l.cfg.Writer
	if w == nil {
		if len(l.fold.Keys()) > 0 {
			return ErrNotRegistered
		}
		return nil
	}
	if l.fold.Registered(w.ID()) {
		return nil
	}
	if reg, ok := first.Event.Body.(*event.WriterRegistered); ok && len(l.fold.Keys()) == 0 &&
		reg.WriterID == w.ID() && reg.RegisteredBy == w.ID() && reg.PublicKey == w.PublicText() {
		return nil
	}
	return ErrNotRegistered
}

// checkStorage refuses a batch of n bytes the storage cannot take now,
// logging when writes stop and resume (each refused request is logged by
// its caller with the same cause).
func (l *Ledger) checkStorage(n int) error {
	st := l.cfg.Storage
	if st == nil {
		return nil
	}
	err := st.CheckWrite(n)
	switch {
	case err != nil && !l.refusing:
		l.cfg.Logger.Error("ledger: storage refuses writes; requests fail until it has room again", "cause", err.Error())
	case err == nil && l.refusing:
		l.cfg.Logger.Warn("ledger: storage takes writes again")
	}
	l.refusing = err != nil
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStorage, err)
	}
	return nil
}

// publishOrFault publishes within PublishTimeout, but stops waiting as
// soon as the storage reports a failed write (the server then never
// acknowledges); the error then names that failure.
func (l *Ledger) publishOrFault(data []byte, msgID string, after uint64) (*jetstream.PubAck, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.PublishTimeout)
	defer cancel()
	var fault context.Context
	if st := l.cfg.Storage; st != nil {
		fault = st.WriteFault()
		defer context.AfterFunc(fault, cancel)()
	}
	ack, err := l.publish(ctx, data, msgID, after)
	switch {
	case err == nil:
		return ack, nil
	case fault != nil && fault.Err() != nil:
		l.refusing = true
		return nil, fmt.Errorf("%w: %v", ErrStorage, context.Cause(fault))
	case isStorageRefusal(err):
		return nil, fmt.Errorf("%w: %v", ErrStorage, err)
	}
	return nil, err
}

// isStorageRefusal reports JetStream's answers for a server that cannot
// store: out of resources, a failed store, JetStream disabled.
func isStorageRefusal(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jsErrInsufficientResources, jsErrStorageResourcesExceeded, jsErrStreamStoreFailed, jetstream.JSErrCodeJetStreamNotEnabled:
			return true
		}
	}
	return false
}

// JetStream error codes nats.go does not name (nats-server's
// JSInsufficientResourcesErr, JSStorageResourcesExceededErr,
// JSStreamStoreFailedF).
const (
	jsErrInsufficientResources    jetstream.ErrorCode = 10023
	jsErrStorageResourcesExceeded jetstream.ErrorCode = 10047
	jsErrStreamStoreFailed        jetstream.ErrorCode = 10077
)

// publish stores data as the message after stream sequence lastSeq, signed
// for exactly that place.
func (l *Ledger) publish(ctx context.Context, data []byte, msgID string, lastSeq uint64) (*jetstream.PubAck, error) {
	return l.publishAs(ctx, l.cfg.Writer, data, msgID, lastSeq)
}

// publishAs publishes a message signed by w, or unsigned if w is nil.
func (l *Ledger) publishAs(ctx context.Context, w *writer.Key, data []byte, msgID string, lastSeq uint64) (*jetstream.PubAck, error) {
	msg := &nats.Msg{Subject: l.segs.current().subject, Data: data, Header: nats.Header{}}
	if w != nil {
		msg.Header.Set(writer.HeaderWriter, w.ID())
		msg.Header.Set(writer.HeaderSignature, base64.StdEncoding.EncodeToString(w.Sign(lastSeq+1, data)))
	}
	return l.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectLastSequence(lastSeq))
}

// accept advances past our own committed records stored at seq and hands
// them on.
func (l *Ledger) accept(recs []event.Record, seq uint64) {
	for i := range recs {
		recs[i].Seq = seq
	}
	l.fold.Advance(seq, recs)
	l.noteFolded()
	l.publishHead(recs, seq)
}

// publishHead makes the folder's head visible and hands recs on.
func (l *Ledger) publishHead(recs []event.Record, seq uint64) {
	l.mu.Lock()
	l.head = l.fold.Head()
	l.mu.Unlock()
	l.cfg.OnCommit(recs)
}

// recover reads back what the stream holds after the position we published
// at. If our message is there it was committed after all; valid messages of
// another writer are the truth and are handed on; anything else is
// quarantined. It settles the batch and returns false, or returns true (the
// batch unsettled) when something else took our place, so that commit can
// publish it again after that or refuse it.
func (l *Ledger) recover(batch []*pending, recs []event.Record, data []byte, msgID string, after uint64, pubErr error) bool {
	wait := l.cfg.PublishTimeout
	if errors.Is(pubErr, ErrStorage) && wait > readBackAfterFault {
		wait = readBackAfterFault // fail fast; a later commit reconciles
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ours, theirs := false, false
	err := l.messagesAfter(ctx, after, func(m storedMsg, seq uint64) error {
		if !ours && !theirs && seq == after+1 && m.Headers().Get(jetstream.MsgIDHeader) == msgID && bytes.Equal(m.Data(), data) {
			ours = true
			l.accept(recs, seq)
			return nil
		}
		if found := l.foldMessage(l.fold, m, seq); found != nil {
			theirs = true
			l.publishHead(found, seq)
		}
		return nil
	})
	if err != nil {
		l.cfg.Logger.Error("ledger: cannot read back after a failed publish", "error", err, "publish_error", pubErr)
		settle(batch, nil, fmt.Errorf("ledger: append failed: %w", pubErr))
		return false
	}
	switch {
	case ours:
		settle(batch, recs, nil)
	case isWrongLastSequence(pubErr):
		return true // commit publishes again, or refuses the batch
	case errors.Is(pubErr, ErrStorage):
		l.cfg.Logger.Error("ledger: append failed: the store refused the write", "cause", pubErr.Error())
		settle(batch, nil, fmt.Errorf("ledger: append failed: %w", pubErr))
	default:
		l.cfg.Logger.Warn("ledger: append failed", "error", pubErr)
		settle(batch, nil, fmt.Errorf("ledger: append failed: %w", pubErr))
	}
	return false
}

// readBackAfterFault bounds the read-back after the storage failed a
// write, so the request fails within about a second.
const readBackAfterFault = time.Second

func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

func settle(batch []*pending, recs []event.Record, err error) {
	for i, p := range batch {
		if err != nil {
			p.done <- result{err: err}
			continue
		}
		p.done <- result{rec: recs[i]}
	}
}

// drain fails every queued event; called once the writer stops.
func (l *Ledger) drain(err error) {
	for {
		select {
		case p := <-l.queue:
			p.done <- result{err: err}
		default:
			return
		}
	}
}

// follow folds what other writers appended since our head, so an instance
// that is not writing still catches up (several instances share a stream).
// It runs on the writer goroutine between batches. What does not
// authenticate or link is quarantined, never applied.
func (l *Ledger) follow() {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.PublishTimeout)
	defer cancel()
	through := l.fold.Through()
	cur := l.segs.current()
	info, err := cur.stream.Info(ctx)
	if err != nil {
		return // ask again next time
	}
	if info.Config.Sealed {
		// Another instance rolled: follow it into the next segment.
		if err := l.refreshSegments(ctx); err != nil {
			l.cfg.Logger.Warn("ledger: looking for the next segment", "error", err)
			return
		}
	} else if lastSeq(l.segs.list(), info) <= through {
		return // nothing new
	}
	err = l.messagesAfter(ctx, through, func(m storedMsg, seq uint64) error {
		if recs := l.foldMessage(l.fold, m, seq); recs != nil {
			l.publishHead(recs, seq)
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		l.cfg.Logger.Warn("ledger: following the stream", "error", err)
	}
}
