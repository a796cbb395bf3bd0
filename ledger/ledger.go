package ledger

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/internal/jsretry"
)

// Errors callers branch on.
var (
	// ErrConflict means another writer appended to the chain first; the event
	// was not stored.
	ErrConflict = errors.New("ledger: another writer appended first")
	// ErrClosed means the ledger is shut down.
	ErrClosed = errors.New("ledger: closed")
	// ErrBroken means the stream holds something that does not link to the
	// chain; the ledger refuses all writes.
	ErrBroken = errors.New("ledger: chain on the stream is broken")
)

// Config names the stream and tunes group commit.
type Config struct {
	Stream   string // stream name, default "KEYLEDGER"
	Subject  string // subject the chain is written to, default "keyledger.events"
	Replicas int    // stream replicas (3 on a cluster), default 1
	// MaxBatchEvents and MaxBatchBytes bound one group commit.
	MaxBatchEvents int
	MaxBatchBytes  int
	// PublishTimeout bounds one round-trip to JetStream.
	PublishTimeout time.Duration
	// FollowInterval is how often an idle writer looks for events other
	// instances appended (default 250ms).
	FollowInterval time.Duration
	// OnCommit receives committed records in chain order, before the
	// requests that appended them are released. It runs on the writer
	// goroutine and must not call Append.
	OnCommit func([]event.Record)
	Logger   *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Stream == "" {
		c.Stream = "KEYLEDGER"
	}
	if c.Subject == "" {
		c.Subject = "keyledger.events"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxBatchEvents == 0 {
		c.MaxBatchEvents = 2000
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = 1 << 20
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 10 * time.Second
	}
	if c.FollowInterval == 0 {
		c.FollowInterval = 250 * time.Millisecond
	}
	if c.OnCommit == nil {
		c.OnCommit = func([]event.Record) {}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Ledger is the JetStream-backed chain.
type Ledger struct {
	cfg    Config
	js     jetstream.JetStream
	stream jetstream.Stream

	queue    chan *pending
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	mu   sync.Mutex // guards head after Start (read by Head)
	head chain.Head
}

type pending struct {
	ev   *event.Event
	done chan result
}

type result struct {
	rec event.Record
	err error
}

// Open ensures the stream exists with deletes and purges denied. It does not
// start the writer: Replay first, then Start.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Ledger, error) {
	cfg.setDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	sc := jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "keyledger: hash-chained ledger of every key operation",
		Subjects:    []string{cfg.Subject},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Discard:     jetstream.DiscardNew,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		MaxAge:      0,
		Duplicates:  2 * time.Minute,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
	}
	// A group commit is one message: keep it within the server's limit.
	if mp := int(nc.MaxPayload()); mp > 0 && cfg.MaxBatchBytes > mp-8192 {
		cfg.MaxBatchBytes = mp - 8192
	}
	stream, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, sc)
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: stream %s: %w", cfg.Stream, err)
	}
	return &Ledger{
		cfg: cfg, js: js, stream: stream,
		queue: make(chan *pending, 16384),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}, nil
}

// Messages yields every message of the stream in order (chain.Source).
func (l *Ledger) Messages(ctx context.Context, fn func(seq uint64, data []byte) error) error {
	return l.messagesAfter(ctx, 0, func(m jetstream.Msg, seq uint64) error { return fn(seq, m.Data()) })
}

// messagesAfter yields messages with sequence > after, up to the stream's
// last sequence when called.
func (l *Ledger) messagesAfter(ctx context.Context, after uint64, fn func(m jetstream.Msg, seq uint64) error) error {
	info, err := jsretry.Do(ctx, func(ctx context.Context) (*jetstream.StreamInfo, error) { return l.stream.Info(ctx) })
	if err != nil {
		return fmt.Errorf("ledger: stream info: %w", err)
	}
	last := info.State.LastSeq
	if last <= after {
		return nil
	}
	// On a cluster that just lost a node this can time out while JetStream
	// re-elects leaders.
	cons, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.Consumer, error) {
		return l.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{l.cfg.Subject},
			DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:    after + 1,
		})
	})
	if err != nil {
		return fmt.Errorf("ledger: reader: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return fmt.Errorf("ledger: reader: %w", err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("ledger: reading stream: %w", err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("ledger: message metadata: %w", err)
		}
		seq := md.Sequence.Stream
		if err := fn(m, seq); err != nil {
			return err
		}
		if seq >= last {
			return nil
		}
	}
}

// Replay decodes every event after head, checking each link, and calls fn in
// order. It returns the new head. A broken link is a *chain.BrokenLinkError.
func (l *Ledger) Replay(ctx context.Context, head chain.Head, fn func(event.Record) error) (chain.Head, error) {
	linker := chain.NewLinker(head)
	err := l.messagesAfter(ctx, head.Seq, func(m jetstream.Msg, seq uint64) error {
		recs, err := linkMessage(linker, seq, m.Data())
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
	return linker.Head(), err
}

// linkMessage links and decodes every event in one message.
func linkMessage(linker *chain.Linker, seq uint64, data []byte) ([]event.Record, error) {
	lines, err := event.SplitBatch(data)
	if err != nil {
		return nil, &chain.BrokenLinkError{Seq: seq, Index: linker.Head().NextIndex(), Expected: "a message of events", Found: err.Error()}
	}
	recs := make([]event.Record, 0, len(lines))
	for _, raw := range lines {
		h, err := linker.Link(seq, raw)
		if err != nil {
			return nil, err
		}
		ev, err := event.Decode(raw)
		if err != nil {
			return nil, &chain.BrokenLinkError{Seq: seq, Index: linker.Head().Index, Expected: "a decodable event", Found: err.Error()}
		}
		recs = append(recs, event.Record{Seq: seq, Event: ev, Raw: raw, Hash: h})
	}
	return recs, nil
}

// Start begins writing after head (as returned by Replay).
func (l *Ledger) Start(head chain.Head) {
	l.head = head
	go l.writer()
}

// Head returns the position of the last committed event.
func (l *Ledger) Head() chain.Head {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}

// Close stops the writer after the events already queued are settled.
func (l *Ledger) Close() {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
}

// Append queues ev (its Index and Prev are set by the writer) and waits until
// it is committed or has failed. The returned record is the stored event.
func (l *Ledger) Append(ctx context.Context, ev *event.Event) (event.Record, error) {
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
	var broken error
	var carry *pending // an event that did not fit in the previous batch
	follow := time.NewTicker(l.cfg.FollowInterval)
	defer follow.Stop()
	for {
		b := newBatch(l.head)
		if carry != nil {
			b.add(carry, l.cfg.MaxBatchBytes)
			carry = nil
		} else {
			select {
			case p := <-l.queue:
				b.add(p, l.cfg.MaxBatchBytes)
			case <-follow.C:
				if broken == nil {
					broken = l.follow()
				}
				continue
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
		if broken != nil {
			settle(b.items, nil, broken)
			continue
		}
		broken = l.commit(b)
	}
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

// commit publishes and settles one batch. It returns a non-nil error only
// when the ledger can no longer be written.
func (l *Ledger) commit(b *batch) error {
	// Raw slices alias data; data may have been reallocated while growing,
	// so re-slice them from the final buffer.
	off := 0
	for i := range b.recs {
		n := len(b.recs[i].Raw)
		b.recs[i].Raw = b.data[off : off+n : off+n]
		off += n + 1
	}
	msgID := fmt.Sprintf("kl-%d-%s", b.recs[0].Event.Index, hex.EncodeToString(b.recs[0].Hash[:8]))
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.PublishTimeout)
	ack, err := l.publish(ctx, b.data, msgID, l.head.Seq)
	cancel()
	if err == nil {
		l.accept(b.recs, ack.Sequence)
		settle(b.items, b.recs, nil)
		return nil
	}
	return l.recover(b.items, b.recs, msgID, err)
}

func (l *Ledger) publish(ctx context.Context, data []byte, msgID string, lastSeq uint64) (*jetstream.PubAck, error) {
	msg := &nats.Msg{Subject: l.cfg.Subject, Data: data, Header: nats.Header{}}
	return l.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectLastSequence(lastSeq))
}

// follow folds what other writers appended since our head, so an instance
// that is not writing still catches up (several instances share a stream).
// It runs on the writer goroutine between batches.
func (l *Ledger) follow() error {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.PublishTimeout)
	defer cancel()
	info, err := l.stream.Info(ctx)
	if err != nil || info.State.LastSeq <= l.head.Seq {
		return nil // nothing new, or ask again next time
	}
	linker := chain.NewLinker(l.head)
	err = l.messagesAfter(ctx, l.head.Seq, func(m jetstream.Msg, seq uint64) error {
		recs, err := linkMessage(linker, seq, m.Data())
		if err != nil {
			return err
		}
		l.accept(recs, seq)
		return nil
	})
	var bl *chain.BrokenLinkError
	if errors.As(err, &bl) {
		l.cfg.Logger.Error("ledger: stream does not link to our chain; refusing writes", "error", bl)
		return ErrBroken
	}
	return nil
}

// accept advances the head past recs stored at seq and hands them on.
func (l *Ledger) accept(recs []event.Record, seq uint64) {
	for i := range recs {
		recs[i].Seq = seq
	}
	last := recs[len(recs)-1]
	l.mu.Lock()
	l.head = chain.Head{Seq: seq, Index: last.Event.Index, Hash: last.Hash, Count: l.head.Count + uint64(len(recs))}
	l.mu.Unlock()
	l.cfg.OnCommit(recs)
}

// recover reads back what the stream holds after the head. If our message is
// there it was committed after all; anything else is another writer's, which
// is the truth and is handed on; if neither, our batch failed cleanly.
func (l *Ledger) recover(batch []*pending, recs []event.Record, msgID string, pubErr error) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.PublishTimeout)
	defer cancel()
	ours := false
	linker := chain.NewLinker(l.head)
	err := l.messagesAfter(ctx, l.head.Seq, func(m jetstream.Msg, seq uint64) error {
		if m.Headers().Get(jetstream.MsgIDHeader) == msgID && !ours {
			ours = true
			for _, r := range recs {
				if _, err := linker.Link(seq, r.Raw); err != nil {
					return err
				}
			}
			l.accept(recs, seq)
			return nil
		}
		found, err := linkMessage(linker, seq, m.Data())
		if err != nil {
			return err
		}
		l.accept(found, seq)
		return nil
	})
	if err != nil {
		var bl *chain.BrokenLinkError
		if errors.As(err, &bl) {
			l.cfg.Logger.Error("ledger: stream does not link to our chain; refusing writes", "error", bl)
			settle(batch, nil, ErrBroken)
			return ErrBroken
		}
		l.cfg.Logger.Error("ledger: cannot read back after a failed publish", "error", err, "publish_error", pubErr)
		settle(batch, nil, fmt.Errorf("ledger: append failed: %w", pubErr))
		return nil
	}
	switch {
	case ours:
		settle(batch, recs, nil)
	case isWrongLastSequence(pubErr):
		settle(batch, nil, ErrConflict)
	default:
		l.cfg.Logger.Warn("ledger: append failed", "error", pubErr)
		settle(batch, nil, fmt.Errorf("ledger: append failed: %w", pubErr))
	}
	return nil
}

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
