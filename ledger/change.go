package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
)

// Key-state changes. A change is validated by the caller against the
// projections as they were at Positions (taken before it read them), and
// appended by AppendChange to the control chain of its first partition key
// only if none of the chains of its partition keys moved since: checked
// against the fold first (a change folded meanwhile: the caller validated
// against an older state), then by JetStream
// (Nats-Expected-Last-Subject-Sequence on each chain's subject: a change
// published meanwhile by another instance). A change on one chain is one
// message; on several, one atomic batch: the change on its chain and a
// Fence on each other, every message with its own expectation, stored all
// or none. A lost race is ErrConflict after the follower folded what won,
// so the caller's next attempt validates against it.

// Positions is where the fold stood on every control chain: the stream
// sequence of each chain's last message.
type Positions struct {
	last  [chain.Partitions]uint64
	taken bool
}

// Positions returns where the fold stands on every control chain. Every
// change folded before it is applied to the projections (OnCommit has
// returned), so state read after Positions is at least as new.
func (l *Ledger) Positions() Positions {
	p := Positions{taken: true}
	l.fmu.Lock()
	defer l.fmu.Unlock()
	for i := range p.last {
		p.last[i] = l.fold.Chain(chain.ControlChain(i)).Last
	}
	return p
}

// EveryPartition, among a change's partition keys, fences it on every
// control chain: a change that depends on every key (retiring a root key
// version once no material is under it). It is one atomic batch of
// chain.Partitions messages; such changes are rare.
const EveryPartition = "*"

// partitionsOf is the control chains a change on keys is appended to, its
// home chain (keys[0]'s) first, in the order its messages are stored.
func partitionsOf(keys []string) []int {
	var parts []int
	every := false
	for _, k := range keys {
		if k == EveryPartition {
			every = true
			continue
		}
		if p := chain.Partition(k); !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	if every {
		for p := range chain.Partitions {
			if !slices.Contains(parts, p) {
				parts = append(parts, p)
			}
		}
	}
	return parts
}

// After is at with the chains that a change AppendChange recorded as rec
// (on keys, as passed to it) moved to that change's own messages, and no
// further: an operation that records several changes validated at one
// position (a seed) fences each on what it read, never on its own earlier
// changes. A change's messages are stored contiguously, its home first.
func (at Positions) After(rec event.Record, keys ...string) Positions {
	for i, p := range partitionsOf(keys) {
		at.last[p] = rec.Seq + uint64(i)
	}
	return at
}

// ErrChangeTooLarge means a change's event does not fit in one message.
var ErrChangeTooLarge = errors.New("ledger: the change does not fit in one message")

// AppendChange appends ev, a key-state change (or a refusal decided from
// key state) validated against the projections at at, to the control
// chain of keys[0] (its partition key: a key, an alias, the service),
// provided that no control chain of any of keys moved since at. It returns
// once the follower folded it (read-your-writes), or ErrConflict, after
// folding what moved, when one did: the caller validates again and
// retries. Changes of one instance are appended one at a time.
func (l *Ledger) AppendChange(ctx context.Context, ev *event.Event, at Positions, keys ...string) (event.Record, error) {
	if !at.taken || len(keys) == 0 {
		return event.Record{}, errors.New("ledger: a change needs the positions it was validated at and its partition keys")
	}
	if !l.started.Load() {
		return event.Record{}, ErrClosed
	}
	select {
	case <-l.stop:
		return event.Record{}, ErrClosed
	default:
	}
	if l.stall.refusing() {
		return event.Record{}, ErrUnavailable // see stall.go
	}
	parts := partitionsOf(keys)
	l.cmu.Lock()
	defer l.cmu.Unlock()
	for attempt := 0; ; attempt++ {
		// At most the segment tryChange published to: roll seals no
		// segment after the one it is given.
		seen := l.segs.current()
		rec, err := l.tryChange(ctx, ev, at, parts)
		if !isSealed(err) {
			return rec, err
		}
		rctx, cancel := context.WithTimeout(ctx, l.cfg.PublishTimeout)
		rerr := l.roll(rctx, seen)
		cancel()
		if rerr != nil {
			l.cfg.Logger.Warn("ledger: following another instance into the next segment", "error", rerr)
		}
		if attempt >= maxRetries {
			return event.Record{}, fmt.Errorf("%w (the ledger was starting a new segment)", ErrConflict)
		}
	}
}

// tryChange makes one attempt at a change on the chains of parts (its
// own first).
func (l *Ledger) tryChange(ctx context.Context, ev *event.Event, at Positions, parts []int) (event.Record, error) {
	// Where each chain stands now: if the fold moved past at, the change
	// was validated against an older state.
	heads := make([]chain.ChainHead, len(parts))
	cur := l.segs.current()
	if cur.first > 1 {
		// A chain whose last message is in an earlier segment is checked
		// against the fold only: it must have folded those segments.
		if err := l.waitFolded(ctx, cur.first-1); err != nil {
			return event.Record{}, err
		}
	}
	l.fmu.Lock()
	for i, p := range parts {
		heads[i] = l.fold.Chain(chain.ControlChain(p))
	}
	l.fmu.Unlock()
	for i, p := range parts {
		if heads[i].Last != at.last[p] {
			return event.Record{}, ErrConflict
		}
	}
	first := event.Record{Event: ev}
	if err := l.mayWrite(first); err != nil {
		return event.Record{}, err
	}
	// The change on its own chain, a Fence on every other.
	home := chain.ControlChain(parts[0])
	ev.Chain, ev.Index, ev.Prev = home, heads[0].NextIndex(), heads[0].Hash
	raw := ev.AppendEncoded(nil)
	first.Raw, first.Hash = raw, event.Of(raw)
	type part struct {
		name string
		last uint64
		data []byte
		ev   *event.Event
	}
	msgs := []part{{home, heads[0].Last, append(raw[:len(raw):len(raw)], '\n'), ev}}
	for i, p := range parts[1:] {
		h := heads[i+1]
		f := event.FenceFor(ev, first.Hash, chain.ControlChain(p), h.NextIndex(), h.Hash)
		msgs = append(msgs, part{f.Chain, h.Last, append(f.AppendEncoded(nil), '\n'), f})
	}
	size := 0
	for _, m := range msgs {
		size += len(m.data)
	}
	if len(msgs[0].data) > l.cfg.MaxBatchBytes {
		return event.Record{}, ErrChangeTooLarge
	}
	if err := l.checkStorage(size); err != nil {
		return event.Record{}, err
	}
	owns := make([]*ownMsg, len(msgs))
	nms := make([]*nats.Msg, len(msgs))
	for i, m := range msgs {
		recHash := event.Of(m.data[:len(m.data)-1])
		owns[i] = l.own(&ownMsg{chain: m.name, msgID: l.changeMessageID(m.name, m.ev.Index, recHash), data: m.data, evs: append([]*event.Event(nil), m.ev)})
		nms[i] = l.signed(cur, m.name, m.last, m.data, owns[i])
		nms[i].Header.Set(jetstream.MsgIDHeader, owns[i].msgID)
		nms[i].Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(localSeq(cur, m.last), 10))
	}
	// disownAll forgets the messages unless the follower took one: an
	// atomic batch is stored whole or not at all.
	disownAll := func() bool {
		l.omu.Lock()
		defer l.omu.Unlock()
		for _, o := range owns {
			if o.claimed {
				return true
			}
		}
		for _, o := range owns {
			delete(l.ownID, o.msgID)
			if o.seq != 0 {
				delete(l.ownSeq, o.seq)
			}
		}
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, l.cfg.PublishTimeout)
	pctx, cancelConn := l.onConnection(pctx)
	defer cancelConn()
	var fault context.Context
	if st := l.cfg.Storage; st != nil {
		// Stop waiting as soon as the storage reports a failed write (the
		// server then never acknowledges), as the data writer does.
		fault = st.WriteFault()
		stopWatch := context.AfterFunc(fault, cancel)
		defer stopWatch()
	}
	began := time.Now()
	seq, err := l.publishChange(pctx, nms)
	rtt := time.Since(began)
	cancel()
	if err != nil && fault != nil && fault.Err() != nil {
		err = fmt.Errorf("%w: %v", ErrStorage, context.Cause(fault))
	}
	if err == nil {
		for i, o := range owns {
			l.acked(o, seq-uint64(len(owns)-1-i))
		}
		l.announce(seq)
		return l.awaitChange(owns)
	}
	if isSealed(err) || isWrongLastSequence(err) {
		if disownAll() {
			return l.awaitChange(owns) // a copy of it was stored: it is folded as ours
		}
		if isSealed(err) {
			return event.Record{}, err
		}
		l.lostOn(parts, 3*rtt) // fold the winner, validate, publish again
		// Another instance's change took the place: fold it, so the
		// caller's next attempt validates against it. JetStream names
		// where the chain stands: folding through there, without first
		// asking where the stream ends, keeps the loser's next attempt as
		// quick as the winner's next change, so one instance cannot win
		// every race while the other catches up.
		cctx, cancel := context.WithTimeout(ctx, l.cfg.PublishTimeout)
		var cerr error
		if last, ok := wrongLastSequence(err); ok {
			cerr = l.waitFolded(cctx, last)
		} else {
			cerr = l.catchUp(cctx)
		}
		cancel()
		if cerr != nil {
			return event.Record{}, fmt.Errorf("%w (and the stream could not be read back: %v)", ErrConflict, cerr)
		}
		return event.Record{}, ErrConflict
	}
	// The outcome is unknown: the stream says what happened.
	cctx, cancel := context.WithTimeout(ctx, l.cfg.PublishTimeout)
	cerr := l.catchUp(cctx)
	cancel()
	if disownAll() {
		return l.awaitChange(owns)
	}
	if cerr != nil {
		l.cfg.Logger.Error("ledger: cannot read back after a failed change", "error", cerr, "publish_error", err)
	}
	return event.Record{}, fmt.Errorf("ledger: change failed: %w", err)
}

// awaitChange waits until the follower folded a change's messages (the
// change's own first, then its fences: the next change of this instance
// validates after all of them) and returns the change's record.
func (l *Ledger) awaitChange(owns []*ownMsg) (event.Record, error) {
	for _, o := range owns {
		select {
		case <-o.done:
		case <-l.followDone:
			select {
			case <-o.done:
			default:
				return event.Record{}, ErrClosed
			}
		}
	}
	o := owns[0]
	if o.recs == nil {
		return event.Record{}, fmt.Errorf("ledger: this instance's change at stream sequence %d was not accepted: %w", o.seq, o.foldErr)
	}
	return o.recs[0], nil
}

// publishChange publishes msgs: one as a plain conditional publish,
// several as one atomic batch. It returns the stream sequence of the last.
func (l *Ledger) publishChange(ctx context.Context, msgs []*nats.Msg) (uint64, error) {
	if len(msgs) == 1 {
		ack, err := l.js.PublishMsg(ctx, msgs[0])
		if err != nil {
			if isStorageRefusal(err) {
				return 0, fmt.Errorf("%w: %v", ErrStorage, err)
			}
			return 0, err
		}
		return ack.Sequence, nil
	}
	nc := l.js.Conn()
	id := msgs[0].Header.Get(jetstream.MsgIDHeader)
	for i, m := range msgs {
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if i < len(msgs)-1 {
			if err := nc.PublishMsg(m); err != nil {
				return 0, err
			}
		}
	}
	last := msgs[len(msgs)-1]
	last.Header.Set("Nats-Batch-Commit", "1")
	resp, err := nc.RequestMsgWithContext(ctx, last)
	if err != nil {
		return 0, err
	}
	var ack struct {
		Seq   uint64              `json:"seq"`
		Count int                 `json:"count"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, fmt.Errorf("ledger: a change's batch was answered with %q", resp.Data)
	}
	if ack.Error != nil {
		if isStorageRefusal(ack.Error) {
			return 0, fmt.Errorf("%w: %v", ErrStorage, ack.Error)
		}
		return 0, ack.Error
	}
	if ack.Count != len(msgs) || ack.Seq < uint64(len(msgs)) {
		return 0, fmt.Errorf("ledger: a change's batch of %d messages was stored as %d", len(msgs), ack.Count)
	}
	return ack.Seq, nil
}

// changeMessageID is the Nats-Msg-Id of a change's message on control
// chain name: what messageID gives, and this instance's writer. Two
// instances can make byte-identical changes (a seed at start under one
// clock, a replicated event), and JetStream would take the second for a
// retry of the first — acknowledged, not stored — and each instance's
// follower would take the other's message for its own.
func (l *Ledger) changeMessageID(name string, index uint64, first event.Hash) string {
	id := messageID(name, index, first)
	if w := l.cfg.Writer; w != nil {
		id += "-" + w.ID()
	}
	return id
}

// wrongLastSequence is the sequence JetStream's wrong-last-sequence
// refusal names: where the subject stands now.
func wrongLastSequence(err error) (uint64, bool) {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return 0, false
	}
	const prefix = "wrong last sequence: "
	i := strings.Index(apiErr.Description, prefix)
	if i < 0 {
		return 0, false
	}
	n, perr := strconv.ParseUint(strings.TrimSpace(apiErr.Description[i+len(prefix):]), 10, 64)
	return n, perr == nil && n > 0
}
