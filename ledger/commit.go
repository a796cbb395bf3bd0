package ledger

import (
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

// The data writer. Append queues an event; the writer goroutine takes what
// is queued into a batch (one JetStream message), links and encodes each
// event on this instance's data chain as it is added, signs the message
// for its place on the chain and publishes it after the chain's last
// message (Nats-Expected-Last-Subject-Sequence, Nats-Msg-Id). Once
// JetStream acknowledges it, the follower folds it (follow.go) and
// releases the waiting requests; the writer goes on with the next batch at
// once. A publish that fails is followed by a read-back (recover): the
// stream, not the error, says what happened. Without a writer key the
// instance writes the legacy chain unsigned (ledgers from before writers
// signed, and tests). Rolling to a new segment is in segments.go, changes
// in change.go.

type pending struct {
	ev   *event.Event
	done chan result
}

type result struct {
	rec event.Record
	err error
}

// Append queues ev (its Index and Prev are set by the writer) and waits until
// it is committed or has failed. The returned record is the stored event.
func (l *Ledger) Append(ctx context.Context, ev *event.Event) (event.Record, error) {
	if l.stall.refusing() {
		return event.Record{}, ErrUnavailable // not queued behind a commit JetStream does not answer (stall.go)
	}
	p := &pending{ev: ev, done: make(chan result, 1)}
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
	l.fmu.Lock()
	l.whead = l.fold.Chain(l.dataChain())
	l.fmu.Unlock()
	var carry *pending // an event that did not fit in the previous batch
	for {
		b := newBatch(l.dataChain(), l.whead)
		if carry != nil {
			b.add(carry, l.cfg.MaxBatchBytes)
			carry = nil
		} else {
			select {
			case p := <-l.queue:
				b.add(p, l.cfg.MaxBatchBytes)
			case <-l.stop:
				l.drain(ErrClosed)
				return
			}
		}
	fill:
		for len(b.items) < l.cfg.MaxBatchEvents {
			select {
			case p := <-l.queue:
				if !b.add(p, l.cfg.MaxBatchBytes) {
					carry = p
					break fill
				}
			default:
				break fill
			}
		}
		l.beginCommit()
		l.commit(b)
		l.endCommit()
	}
}

// dataChain is this instance's data chain: its writer's, or the legacy
// chain without a writer key.
func (l *Ledger) dataChain() string {
	if l.cfg.Writer == nil {
		return chain.Legacy
	}
	return chain.DataChain(l.cfg.Writer.ID())
}

// batch is one group commit being built: its events are linked and encoded
// as they are added, into the message that will carry them.
type batch struct {
	chain string
	items []*pending
	recs  []event.Record
	data  []byte
	next  uint64
	prev  event.Hash
	last  uint64 // the stream sequence of the chain's last message
}

func newBatch(name string, head chain.ChainHead) *batch {
	return &batch{chain: name, next: head.NextIndex(), prev: head.Hash, last: head.Last, data: make([]byte, 0, 16<<10)}
}

// add links and encodes p as the next event. It refuses (leaving the batch
// as it was) when the message would outgrow maxBytes, unless the batch is
// empty: a lone oversized event is tried, and fails on its own.
func (b *batch) add(p *pending, maxBytes int) bool {
	start := len(b.data)
	p.ev.Index, p.ev.Prev, p.ev.Chain = b.next, b.prev, b.chain
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
	return messageID(b.chain, b.recs[0].Event.Index, b.recs[0].Hash)
}

// relink returns b's events linked after head, or b itself if it is
// linked there already.
func (b *batch) relink(head chain.ChainHead, maxBytes int) *batch {
	first := b.recs[0].Event
	if first.Index == head.NextIndex() && first.Prev == head.Hash && b.last == head.Last {
		return b
	}
	nb := newBatch(b.chain, head)
	for _, p := range b.items {
		nb.add(p, maxBytes+len(b.data)) // the same events: they fit
	}
	nb.seal()
	return nb
}

// events are the batch's decoded events, in order.
func (b *batch) events() []*event.Event {
	out := make([]*event.Event, len(b.recs))
	for i, r := range b.recs {
		out[i] = r.Event
	}
	return out
}

// messageID is the Nats-Msg-Id of the message whose first event has index
// and hash first on chain: JetStream drops a retried publish of the same
// message.
func messageID(name string, index uint64, first event.Hash) string {
	if name == chain.Legacy {
		return fmt.Sprintf("kl-%d-%s", index, hex.EncodeToString(first[:8]))
	}
	return fmt.Sprintf("kl-%s-%d-%s", name, index, hex.EncodeToString(first[:8]))
}

// commit publishes one batch; the follower settles it once folded.
func (l *Ledger) commit(b *batch) {
	b.seal()
	if seen := l.segs.current(); l.rollDue(seen, l.folded.Load()) {
		ctx, cancel := context.WithTimeout(context.Background(), l.cfg.PublishTimeout)
		err := l.roll(ctx, seen)
		cancel()
		if err != nil {
			l.cfg.Logger.Error("ledger: cannot start a new segment", "error", err)
			if l.segs.current().sealed {
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
	for attempt := 0; ; attempt++ {
		cur := l.segs.current()
		if b.last != 0 && localSeq(cur, b.last) == 0 {
			// The chain's last message is in an earlier segment, where the
			// subject was another: JetStream checks nothing there, so the
			// fold must have seen the chain's end before this segment.
			if nb, err := l.relinkAtSegment(cur, b); err != nil {
				settle(b.items, nil, err)
				return
			} else {
				b = nb
			}
		}
		msgID := b.seal()
		o := l.own(&ownMsg{chain: b.chain, msgID: msgID, data: b.data, evs: b.events(), items: b.items})
		msg := l.signed(cur, b.chain, b.last, b.data, o)
		ack, err := l.publishOrFault(msg, msgID, localSeq(cur, b.last))
		if err == nil {
			last := b.recs[len(b.recs)-1]
			l.whead = chain.ChainHead{Seq: ack.Sequence, Index: last.Event.Index, Hash: last.Hash, Last: ack.Sequence, Count: l.whead.Count + uint64(len(b.recs))}
			l.acked(o, ack.Sequence)
			l.announce(ack.Sequence)
			return
		}
		switch {
		case isSealed(err):
			// Another instance is rolling: finish the roll with it (sealing
			// and creating are idempotent) rather than spin on the sealed
			// stream, then publish again in the new segment.
			if l.disown(o) {
				return // stored after all (another copy of it): the follower settles it
			}
			ctx, cancel := context.WithTimeout(context.Background(), l.cfg.PublishTimeout)
			rerr := l.roll(ctx, cur)
			cancel()
			if rerr != nil {
				l.cfg.Logger.Warn("ledger: following another instance into the next segment", "error", rerr)
			}
		case isWrongLastSequence(err):
			// Something else took the chain's next place: garbage another
			// NATS client put on the subject, or another process holding
			// this writer key. Fold it, then link the batch after the
			// chain's last valid event and publish it after that message.
			if l.disown(o) {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), l.cfg.PublishTimeout)
			cerr := l.catchUp(ctx)
			cancel()
			if cerr != nil {
				settle(b.items, nil, fmt.Errorf("ledger: append failed: %w (and the stream could not be read back: %v)", err, cerr))
				return
			}
			before := l.whead
			l.fmu.Lock()
			l.whead = l.fold.Chain(b.chain)
			l.fmu.Unlock()
			l.noteChainMoved(b.chain, before)
			b = b.relink(l.whead, l.cfg.MaxBatchBytes)
		default:
			l.recover(o, b.items, err)
			return
		}
		if attempt >= maxRetries {
			settle(b.items, nil, ErrConflict)
			return
		}
	}
}

// relinkAtSegment returns b linked after its chain's last message before
// segment cur, as the fold found it.
func (l *Ledger) relinkAtSegment(cur *segStream, b *batch) (*batch, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.PublishTimeout)
	defer cancel()
	if err := l.waitFolded(ctx, cur.first-1); err != nil {
		return b, fmt.Errorf("ledger: append failed: %w", err)
	}
	l.fmu.Lock()
	h := l.fold.Chain(b.chain)
	l.fmu.Unlock()
	if h.Last == b.last {
		return b, nil
	}
	l.whead = h
	return b.relink(h, l.cfg.MaxBatchBytes), nil
}

// maxRetries bounds how often one message is published again after
// something else took its place on its chain, or a roll sealed its
// segment.
const maxRetries = 8

// mayWrite refuses a batch the ledger would quarantine: signed by a key it
// has not registered (the first writer registers itself in its first
// message; an unsigned ledger takes no unsigned message once a writer is
// registered).
func (l *Ledger) mayWrite(first event.Record) error {
	w := l.cfg.Writer
	if w != nil && l.Registered(w.ID()) {
		return nil // the usual case, first: Writers lists (and encodes) every writer
	}
	if w != nil {
		if _, gone := l.RevokedWriter(w.ID()); gone {
			return ErrRevoked
		}
	}
	registered := len(l.Writers()) > 0 || len(l.Revoked()) > 0
	if w == nil {
		if registered {
			return ErrNotRegistered
		}
		return nil
	}
	if reg, ok := first.Event.Body.(*event.WriterRegistered); ok && !registered &&
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

// publishOrFault publishes msg within PublishTimeout, after the
// message at stream sequence expect on its subject, sending it again
// while no server answers or none leads the stream (stall.go), but stops
// waiting as soon as the storage reports a failed write (the server then
// never acknowledges); the error then names that failure.
func (l *Ledger) publishOrFault(msg *nats.Msg, msgID string, expect uint64) (*jetstream.PubAck, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.PublishTimeout)
	defer cancel()
	ctx, cancelConn := l.onConnection(ctx)
	defer cancelConn()
	var fault context.Context
	if st := l.cfg.Storage; st != nil {
		fault = st.WriteFault()
		defer context.AfterFunc(fault, cancel)()
	}
	var ack *jetstream.PubAck
	var err error
	for {
		actx, cancelAttempt := context.WithTimeout(ctx, publishAttempt)
		ack, err = l.js.PublishMsg(actx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectLastSequencePerSubject(expect))
		cancelAttempt()
		if err == nil || ctx.Err() != nil {
			break
		}
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			l.answered() // the cluster is there, electing the stream's leader
		} else if !errors.Is(err, context.DeadlineExceeded) {
			break
		}
	}
	l.noteAck(err)
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

// signed is data as a message on chain in segment s, after the chain's
// message at stream sequence last, signed by this instance's writer (on
// the legacy chain, unsigned without a writer key). o, when given, keeps
// the headers for the follower.
func (l *Ledger) signed(s *segStream, name string, last uint64, data []byte, o *ownMsg) *nats.Msg {
	msg := &nats.Msg{Subject: chainSubject(s, name), Data: data, Header: nats.Header{}}
	if w := l.cfg.Writer; w != nil {
		var sig []byte
		if name == chain.Legacy {
			sig = w.Sign(last+1, data) // never used by this build's writers
		} else {
			sig = w.SignAt(name, last, data)
		}
		msg.Header.Set(writer.HeaderWriter, w.ID())
		msg.Header.Set(writer.HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	}
	if o != nil {
		o.writer, o.sig = msg.Header.Get(writer.HeaderWriter), msg.Header.Get(writer.HeaderSignature)
	}
	return msg
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

// publishAs publishes a message on the legacy chain after stream sequence
// lastSeq, signed by w for that place, or unsigned if w is nil (Import).
func (l *Ledger) publishAs(ctx context.Context, w *writer.Key, data []byte, msgID string, lastSeq uint64) (*jetstream.PubAck, error) {
	msg := &nats.Msg{Subject: l.segs.current().subject, Data: data, Header: nats.Header{}}
	if w != nil {
		msg.Header.Set(writer.HeaderWriter, w.ID())
		msg.Header.Set(writer.HeaderSignature, base64.StdEncoding.EncodeToString(w.Sign(lastSeq+1, data)))
	}
	return l.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectLastSequence(lastSeq))
}

// recover settles a batch whose publish failed with pubErr: it waits until
// the follower folded what the stream holds now. If the batch's message is
// there it was stored after all, and the follower settles it; otherwise
// nothing happened and the batch fails.
func (l *Ledger) recover(o *ownMsg, items []*pending, pubErr error) {
	wait := l.cfg.PublishTimeout
	if errors.Is(pubErr, ErrStorage) && wait > readBackAfterFault {
		wait = readBackAfterFault // fail fast; a later commit reconciles
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	cerr := l.catchUp(ctx)
	cancel()
	if l.disown(o) {
		return // stored after all: the follower settles it
	}
	switch {
	case cerr != nil:
		l.cfg.Logger.Error("ledger: cannot read back after a failed publish", "error", cerr, "publish_error", pubErr)
	case errors.Is(pubErr, ErrStorage):
		l.cfg.Logger.Error("ledger: append failed: the store refused the write", "cause", pubErr.Error())
	default:
		l.cfg.Logger.Warn("ledger: append failed", "error", pubErr)
	}
	settle(items, nil, fmt.Errorf("ledger: append failed: %w", pubErr))
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

// copiedKeyAlarmEvery bounds how often a second process writing with this
// instance's writer key is reported while it goes on.
const copiedKeyAlarmEvery = time.Minute

// placeTakenWarnEvery bounds how often a refused message in the data
// chain's next place is reported. It can happen on every publish: a
// stream leader cut off from its quorum answered each one so (about 275
// a second in the partition test), and a forger can keep publishing.
const placeTakenWarnEvery = 10 * time.Second

// noteChainMoved reports what took this instance's data chain's next
// place (the chain stood at before). If the chain's head moved, a valid
// event signed with this writer key was stored by someone else: a copy of
// writer.key runs elsewhere, and the two take turns on one chain (no
// fork, but each loses races and some requests fail). Anything else was a
// message the fold refused. Writer loop only.
func (l *Ledger) noteChainMoved(name string, before chain.ChainHead) {
	if l.whead.Index == before.Index && l.whead.Hash == before.Hash {
		l.placeTaken++
		if now := time.Now(); now.Sub(l.placeTakenWarn) >= placeTakenWarnEvery {
			l.cfg.Logger.Warn("ledger: a message that is not this instance's took its data chain's next place (refused by the fold); publishing after it",
				"chain", name, "last", l.whead.Last, "times_since_last_report", l.placeTaken)
			l.placeTakenWarn, l.placeTaken = now, 0
		}
		return
	}
	if now := time.Now(); now.Sub(l.copiedKeyAlarm) >= copiedKeyAlarmEvery {
		l.copiedKeyAlarm = now
		l.cfg.Logger.Error("ALARM: another process writes with this instance's writer key: its data chain moved under it. Stop the copy: every instance needs a writer key of its own (keyledger writer register)",
			"chain", name, "last", l.whead.Last)
	}
}
