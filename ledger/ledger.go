package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/internal/jsretry"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/segment"
	"github.com/keyledger/keyledger/ledger/writer"
)

// Errors callers branch on.
var (
	// ErrConflict means another writer appended to the chain first; the event
	// was not stored.
	ErrConflict = errors.New("ledger: another writer appended first")
	// ErrClosed means the ledger is shut down.
	ErrClosed = errors.New("ledger: closed")
	// ErrBroken is kept for callers that branch on it; since messages that
	// do not link are quarantined, the writer no longer stops on them.
	ErrBroken = errors.New("ledger: chain on the stream is broken")
	// ErrNotRegistered means this instance's writer key is not registered
	// in the ledger, so nothing it signs would be accepted.
	ErrNotRegistered = errors.New("ledger: this instance's writer key is not registered in the ledger")
	// ErrStorage means the store under the stream refused the write (a
	// full disk, a failed write, JetStream out of resources); the error
	// names the cause. The event was not stored.
	ErrStorage = errors.New("ledger: storage refuses writes")
)

// Storage is the disk under the stream when keyledger runs the server
// itself (embedded.Server). With it a full disk fails requests at once,
// naming the cause, rather than after PublishTimeout, and writes resume
// when space returns.
type Storage interface {
	// CheckWrite returns nil when about n bytes can be stored now, or why
	// not; after a failed write it reopens the store once the cause is gone.
	CheckWrite(n int) error
	// WriteFault is done, with the failure as its cause, once the server
	// failed to store a write: it will not acknowledge the publish.
	WriteFault() context.Context
}

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
	// Writer signs every message this instance publishes. Without one the
	// ledger can be read but not written.
	Writer *writer.Key
	// Uncompressed stores the stream's blocks as they are; by default they
	// are S2-compressed on disk (JetStream compresses whole message blocks;
	// what the stream serves, and so every hash, is the exact bytes written).
	Uncompressed bool
	// ReadOnly opens an existing stream without creating or updating it
	// (what a subscribe-only audit identity may do).
	ReadOnly bool
	// Storage, when set, is checked before every publish (see Storage).
	Storage Storage
	// SegmentPeriod starts a new segment stream once the current one is
	// this old (segments.go); SegmentMessages once it holds this many
	// messages. Zero: never.
	SegmentPeriod   time.Duration
	SegmentMessages uint64
	Logger          *slog.Logger
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
	cfg  Config
	js   jetstream.JetStream
	segs segmentSet   // the segment streams, in order (segments.go)
	base segment.Base // where the live ledger starts (base.go); empty: at its first message
	// baseTree is the tiled Merkle tree's frontier at the base.
	baseTree merkle.Frontier
	// baseSigner is the writer that signed the stored base (ID → public key).
	baseSigner map[string]string

	queue    chan *pending
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	mu   sync.Mutex // guards head after Start (read by Head)
	head chain.Head

	// fold authenticates and links what the stream holds. Replay owns it
	// before Start, the writer goroutine after.
	fold        *chain.Folder
	quarantined atomic.Uint64
	started     atomic.Bool
	through     atomic.Uint64 // the folder's Through, for readers of the history
	keys        atomic.Pointer[map[string]ed25519.PublicKey]
	qmu         sync.Mutex
	qseqs       map[uint64]bool // stream sequences quarantined
	qfirst      []string        // the first few quarantines, for reports

	refusing bool // the writer's storage refused the last batch (writer goroutine only)

	// Contention between writers (relink.go).
	token    string             // this instance in wait/done notices
	peerSub  *nats.Subscription // nil: this writer does not yield
	peerWait atomic.Int64       // unix nanos until which a peer asked us to hold
	peerDone chan struct{}      // a peer settled its batch
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
	// A group commit is one message: keep it within the server's limit.
	if mp := int(nc.MaxPayload()); mp > 0 && cfg.MaxBatchBytes > mp-8192 {
		cfg.MaxBatchBytes = mp - 8192
	}
	l := &Ledger{
		cfg: cfg, js: js,
		queue: make(chan *pending, 16384),
		fold:  chain.NewFolder(),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if err := l.openSegments(ctx); err != nil {
		return nil, err
	}
	if err := l.loadBase(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// openSegments finds the ledger's segment streams and, unless read-only,
// creates (or updates) the one written to when it is segment 0; later
// segments were created by a roll and are left as they are.
func (l *Ledger) openSegments(ctx context.Context) error {
	segs, err := l.discoverSegments(ctx)
	if err != nil {
		return err
	}
	switch {
	case len(segs) == 0:
		if l.cfg.ReadOnly {
			return fmt.Errorf("ledger: stream %s: %w", l.cfg.Stream, jetstream.ErrStreamNotFound)
		}
		if l.hasBaseBucket(ctx) {
			return fmt.Errorf("ledger: no segment stream of %s is left, but a removal is recorded: refusing to start an empty ledger over it", l.cfg.Stream)
		}
		fallthrough
	case len(segs) == 1 && segs[0].n == 0 && !segs[0].sealed && !l.cfg.ReadOnly:
		// A new ledger, or one that never rolled: create it or bring its
		// config up to date, as before segments.
		stream, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.Stream, error) {
			return l.js.CreateOrUpdateStream(ctx, l.segmentConfig(0, 1))
		})
		if err != nil {
			return fmt.Errorf("ledger: stream %s: %w", l.cfg.Stream, err)
		}
		segs = []*segStream{segmentOf(0, stream)}
	}
	l.segs.set(segs)
	return checkContiguous(l.cfg.Stream, segs)
}

// checkContiguous refuses segments with a gap between them.
func checkContiguous(stream string, segs []*segStream) error {
	for i := 1; i < len(segs); i++ {
		prev, s := segs[i-1], segs[i]
		if !prev.sealed || prev.last+1 != s.first {
			return &MissingSegmentError{Stream: stream, From: prev.last + 1, To: s.first - 1}
		}
	}
	return nil
}

// Messages yields every message of the live ledger (after its base) in
// order, with its writer headers (chain.Source). Fold them from
// Base().Folder().
func (l *Ledger) Messages(ctx context.Context, fn func(chain.Message) error) error {
	return l.messagesAfter(ctx, l.base.Seq, func(m storedMsg, seq uint64) error { return fn(message(m, seq)) })
}

func message(m storedMsg, seq uint64) chain.Message {
	h := m.Headers()
	return chain.Message{Seq: seq, Data: m.Data(), Writer: h.Get(writer.HeaderWriter), Signature: h.Get(writer.HeaderSignature)}
}

// noteFolded publishes the folder's position and writers to readers of
// the history.
func (l *Ledger) noteFolded() {
	l.through.Store(l.fold.Through())
	if k := l.fold.Keys(); l.keys.Load() == nil || len(*l.keys.Load()) != len(k) {
		l.keys.Store(&k)
	}
}

// authentic reports whether a message may be shown to readers of the
// history: folded and accepted, or (past what was folded) signed for its
// place by a registered writer.
func (l *Ledger) authentic(m storedMsg, seq uint64) bool {
	if seq <= l.through.Load() {
		l.qmu.Lock()
		defer l.qmu.Unlock()
		return !l.qseqs[seq]
	}
	cm := message(m, seq)
	keys := l.keys.Load()
	if keys == nil || len(*keys) == 0 {
		return cm.Writer == ""
	}
	pub, ok := (*keys)[cm.Writer]
	sig, err := base64.StdEncoding.DecodeString(cm.Signature)
	return ok && err == nil && writer.Verify(pub, seq, cm.Data, sig)
}

// quarantinedSeq reports whether folding refused the message at seq.
func (l *Ledger) quarantinedSeq(seq uint64) bool {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return l.qseqs[seq]
}

// Quarantined is how many messages this instance refused to fold.
func (l *Ledger) Quarantined() uint64 { return l.quarantined.Load() }

// reportedQuarantines is how many quarantines QuarantineReasons keeps.
const reportedQuarantines = 5

// QuarantineReasons names the first quarantined messages (at most five):
// where they are in the stream, the writer they claim, and why.
func (l *Ledger) QuarantineReasons() []string {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return append([]string(nil), l.qfirst...)
}

// Writers returns the writers the ledger has registered (ID → public key).
func (l *Ledger) Writers() map[string]string {
	out := map[string]string{}
	if k := l.keys.Load(); k != nil {
		for id, pub := range *k {
			out[id] = base64.StdEncoding.EncodeToString(pub)
		}
	}
	return out
}

// Registered reports whether the ledger has registered a writer.
func (l *Ledger) Registered(id string) bool {
	k := l.keys.Load()
	if k == nil {
		return false
	}
	_, ok := (*k)[id]
	return ok
}

// quarantine counts and raises the alarm for a refused message.
func (l *Ledger) quarantine(q *chain.Quarantine) {
	l.quarantined.Add(1)
	l.qmu.Lock()
	if l.qseqs == nil {
		l.qseqs = map[uint64]bool{}
	}
	l.qseqs[q.Seq] = true
	if len(l.qfirst) < reportedQuarantines {
		l.qfirst = append(l.qfirst, fmt.Sprintf("stream sequence %d (writer %q): %v", q.Seq, q.Writer, q.Reason))
	}
	l.qmu.Unlock()
	l.cfg.Logger.Error("ALARM: ledger message quarantined: not applied; the chain continues from the last valid event",
		"stream_sequence", q.Seq, "writer", q.Writer, "reason", q.Reason.Error())
}

// foldMessage folds one message into f, quarantining it if need be; nil
// records means quarantined. Only the ledger's own folder (l.fold) counts
// and raises alarms: a Replay after Start walks with a folder of its own.
func (l *Ledger) foldMessage(f *chain.Folder, m storedMsg, seq uint64) []event.Record {
	recs, err := f.Fold(message(m, seq))
	own := f == l.fold
	if own {
		l.noteFolded()
	}
	if err != nil {
		var q *chain.Quarantine
		if errors.As(err, &q) && own {
			l.quarantine(q)
		}
		return nil
	}
	return recs
}

// Replay folds the whole live ledger, authenticating and linking every
// message, and calls fn for every accepted event in order. Messages that
// fail are quarantined (counted and logged as alarms), never applied. It
// returns the head, the last valid event. head must be the zero Head:
// replay always starts from the first message (or the base, after a
// removed segment), since authorship depends on the writers registered
// before.
func (l *Ledger) Replay(ctx context.Context, head chain.Head, fn func(event.Record) error) (chain.Head, error) {
	if !head.Empty() {
		return head, errors.New("ledger: replay starts from the first message")
	}
	f, err := l.baseFolder()
	if err != nil {
		return chain.Head{}, err
	}
	if !l.started.Load() {
		l.fold = f // before Start, Replay builds the writer's folder
		l.noteFolded()
	}
	err = l.messagesAfter(ctx, l.base.Seq, func(m storedMsg, seq uint64) error {
		for _, r := range l.foldMessage(f, m, seq) {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
	var ue *UnreadableError
	if errors.As(err, &ue) && ue.After == nil {
		h := f.Head()
		ue.After = &h
	}
	return f.Head(), err
}

// Start begins writing after head (as returned by Replay).
func (l *Ledger) Start(head chain.Head) {
	l.head = l.fold.Head()
	l.started.Store(true)
	if l.cfg.Writer != nil && !l.cfg.ReadOnly {
		l.listenToPeers()
	}
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
	if l.peerSub != nil {
		defer func() { _ = l.peerSub.Unsubscribe() }()
	}
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
				l.follow()
				continue
			case <-l.stop:
				l.drain(ErrClosed)
				return
			}
		}
		l.yieldToPeers() // what is queued meanwhile joins this batch
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
		l.commit(b)
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
