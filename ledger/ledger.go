package ledger

import (
	"context"
	"crypto/ed25519"
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
	"github.com/keyledger/keyledger/ledger/internal/streamname"
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

// DefaultStream is the ledger stream's name when Config.Stream is empty.
const DefaultStream = streamname.Default

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
	Stream   string // stream name, default DefaultStream
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
	c.Stream = streamname.Or(c.Stream)
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

	// Contention between writers (contention.go).
	token    string             // this instance in wait/done notices
	peerSub  *nats.Subscription // nil: this writer does not yield
	peerWait atomic.Int64       // unix nanos until which a peer asked us to hold
	peerDone chan struct{}      // a peer settled its batch
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
	l.updateDedupeWindow(ctx, segs)
	l.segs.set(segs)
	return checkContiguous(l.cfg.Stream, segs)
}

// updateDedupeWindow brings the current segment's Duplicates to
// dedupeWindow when a roll made it (segment 0 of a ledger that never
// rolled is brought up to date with its whole config above). A failure
// costs only start-up time and is logged.
func (l *Ledger) updateDedupeWindow(ctx context.Context, segs []*segStream) {
	if len(segs) == 0 || l.cfg.ReadOnly {
		return
	}
	cur := segs[len(segs)-1]
	cfg := cur.stream.CachedInfo().Config
	if cur.n == 0 || cur.sealed || cfg.Duplicates == dedupeWindow {
		return
	}
	cfg.Duplicates = dedupeWindow
	if _, err := l.js.UpdateStream(ctx, cfg); err != nil {
		l.cfg.Logger.Warn("ledger: cannot shorten the duplicates window of the current segment", "stream", cur.name, "error", err)
	}
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

// Resume is where a snapshot leaves the fold: its last event, the writers
// registered by then and the messages quarantined before it.
type Resume struct {
	Head        chain.Head
	Writers     map[string]ed25519.PublicKey
	Quarantined []uint64 // stream sequences, all at or before Head.Seq
}

// ReplayFrom is Replay continued from a snapshot: it folds the messages
// after r.Head.Seq (authenticating and linking each to r.Head, quarantining
// what fails) and calls fn for every accepted event. Called before Start,
// it builds the writer's folder. r.Head must be an event the ledger holds
// (EventHashAt).
func (l *Ledger) ReplayFrom(ctx context.Context, r Resume, fn func(event.Record) error) (chain.Head, error) {
	if l.started.Load() {
		return chain.Head{}, errors.New("ledger: ReplayFrom after Start")
	}
	f := chain.ResumeFolder(r.Head, r.Writers)
	l.fold = f
	l.qmu.Lock()
	l.qseqs = map[uint64]bool{}
	l.qfirst = nil
	for _, seq := range r.Quarantined {
		l.qseqs[seq] = true
		if len(l.qfirst) < reportedQuarantines {
			// The reason was found before the snapshot; audit verify finds
			// it again from the message itself.
			l.qfirst = append(l.qfirst, fmt.Sprintf("stream sequence %d: quarantined before the snapshot this start resumed from (keyledger audit verify names why)", seq))
		}
	}
	l.qmu.Unlock()
	l.quarantined.Store(uint64(len(r.Quarantined)))
	l.noteFolded()
	err := l.messagesAfter(ctx, r.Head.Seq, func(m storedMsg, seq uint64) error {
		for _, rec := range l.foldMessage(f, m, seq) {
			if err := fn(rec); err != nil {
				return err
			}
		}
		return nil
	})
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
