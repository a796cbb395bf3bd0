package ledger

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
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
	// ErrRevoked means this instance's writer key was revoked: nothing it
	// signs will ever be accepted again. It is an ErrNotRegistered.
	ErrRevoked = fmt.Errorf("%w: it was revoked", ErrNotRegistered)
	// ErrStorage means the store under the stream refused the write (a
	// full disk, a failed write, JetStream out of resources); the error
	// names the cause. The event was not stored.
	ErrStorage = errors.New("ledger: storage refuses writes")
	// ErrUnavailable means JetStream stopped answering this instance's
	// commits (for Config.StallTimeout, or a whole PublishTimeout) and
	// one is in flight (stall.go); the event was not stored.
	ErrUnavailable = errors.New("ledger: JetStream is not answering commits")
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
	// StallTimeout is how long a commit may go without any answer from
	// JetStream before requests fail at once instead of queueing behind
	// it (stall.go); default 2s.
	StallTimeout time.Duration
	// FollowInterval is how often the follower asks the stream for
	// messages nobody told it about (default 250ms); other instances'
	// appends are announced at once (follow.go).
	FollowInterval time.Duration
	// OnCommit receives the records of every accepted message in stream
	// order, before the requests that appended them are released. It runs
	// on the follower goroutine and must not call Append.
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
	// messages; SegmentBytes once it holds this many bytes (as JetStream
	// counts them, uncompressed), which bounds a restart after a crash.
	// Zero: never.
	SegmentPeriod   time.Duration
	SegmentMessages uint64
	SegmentBytes    uint64
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
	if c.StallTimeout == 0 {
		c.StallTimeout = 2 * time.Second
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

// Ledger is the JetStream-backed ledger.
type Ledger struct {
	cfg  Config
	js   jetstream.JetStream
	segs segmentSet   // the segment streams, in order (segments.go)
	base segment.Base // where the live ledger starts (base.go); empty: at its first message
	// baseTree is the tiled Merkle tree's frontier at the base.
	baseTree merkle.Frontier
	// baseSigner is the writer that signed the stored base (ID → public key).
	baseSigner   map[string]string
	baseEventSeq uint64 // the stream sequence of its SegmentRemoved event

	queue    chan *pending
	stop     chan struct{} // closed by Close
	stopOnce sync.Once
	done     chan struct{} // closed when the data writer stopped

	// The fold authenticates and links what the stream holds, in stream
	// order. Replay owns it before Start, the follower after, under fmu,
	// which the follower holds while it folds a message and hands its
	// records to OnCommit: what anyone reads of the fold under fmu has
	// been applied.
	fmu sync.Mutex
	// rmu orders the folds readers of a ledger not started ask for
	// (ensureFolded).
	rmu    sync.Mutex
	fold   *chain.Folder
	moved  chan struct{} // closed and replaced whenever the fold moves (under fmu)
	folded atomic.Uint64 // the fold's Through, once applied

	anchors     anchors // positions the fold found (anchors.go)
	quarantined atomic.Uint64
	started     atomic.Bool
	keys        atomic.Pointer[map[string]ed25519.PublicKey]
	revoked     atomic.Pointer[map[string]chain.Revocation]
	qmu         sync.Mutex
	qseqs       map[uint64]string // stream sequences quarantined → their chain
	qfirst      []string          // the first few quarantines, for reports

	// The follower (follow.go).
	foldMu     sync.Mutex    // held by whoever folds past folded: the follower, or acked's foldNext
	target     atomic.Uint64 // the stream sequence the follower folds up to
	kick       chan struct{}
	stopFollow chan struct{}
	followDone chan struct{}
	noticeSub  *nats.Subscription
	omu        sync.Mutex
	ownID      map[string]*ownMsg // this instance's messages in flight, by Nats-Msg-Id
	ownSeq     map[uint64]*ownMsg // … once acknowledged, by stream sequence

	// The data writer (commit.go; writer goroutine only).
	whead    chain.ChainHead // its chain's head as it published it
	refusing bool            // the storage refused the last batch
	stall    stallWatch      // commits JetStream leaves unanswered (stall.go)
	// copiedKeyAlarm is when a copy of this writer key was last reported.
	copiedKeyAlarm time.Time
	// placeTakenWarn is when a refused message taking the data chain's next
	// place was last reported, and placeTaken how many since (writer loop).
	placeTakenWarn time.Time
	placeTaken     int

	connEpoch atomic.Pointer[connEpoch] // ends when the connection is lost (follow.go)
	// directShunned is when reads try direct gets again (unix ns), after
	// one went unanswered (read.go).
	directShunned atomic.Int64

	cmu     sync.Mutex // one change at a time (change.go)
	contend contention // other instances' lost changes (contention.go)
	rollMu  sync.Mutex // one roll at a time (segments.go)
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
		queue:      make(chan *pending, 16384),
		fold:       chain.NewFolder(),
		moved:      make(chan struct{}),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		kick:       make(chan struct{}, 1),
		stopFollow: make(chan struct{}),
		followDone: make(chan struct{}),
		ownID:      map[string]*ownMsg{},
		ownSeq:     map[uint64]*ownMsg{},
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
	case !l.cfg.ReadOnly && !segs[len(segs)-1].sealed:
		// The segment written to, rolled to by an older build: it takes
		// the chains' subjects from now on.
		cur := segs[len(segs)-1]
		info, err := cur.stream.Info(ctx)
		if err != nil {
			return fmt.Errorf("ledger: stream %s: %w", cur.name, err)
		}
		if want := chainSubjects(cur.subject); !slices.Equal(info.Config.Subjects, want) || !info.Config.AllowAtomicPublish {
			c := info.Config
			c.Subjects, c.AllowAtomicPublish = want, true
			if c.Metadata == nil {
				c.Metadata = map[string]string{}
			}
			c.Metadata[metaPartitions] = strconv.Itoa(chain.Partitions)
			st, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.Stream, error) { return l.js.UpdateStream(ctx, c) })
			if err != nil {
				return fmt.Errorf("ledger: stream %s: taking the chains' subjects: %w", cur.name, err)
			}
			segs[len(segs)-1] = segmentOf(cur.n, st)
		}
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
// before. Before Start, reading the history (EventsFrom, EventsSince)
// folds further what arrived since, without fn: an owner that applies what
// Replay yields starts the ledger before it reads the history.
func (l *Ledger) Replay(ctx context.Context, head chain.Head, fn func(event.Record) error) (chain.Head, error) {
	if !head.Empty() {
		return head, errors.New("ledger: replay starts from the first message")
	}
	f, err := l.baseFolder()
	if err != nil {
		return chain.Head{}, err
	}
	if !l.started.Load() {
		l.fold = f // before Start, Replay builds the follower's folder
		l.anchors.reset()
		l.noteFolded()
	}
	err = l.messagesAfter(ctx, l.base.Seq, func(m storedMsg, seq uint64) error {
		for _, r := range l.foldMessage(f, l.message(m, seq)) {
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

// Resume is where a snapshot leaves the fold: its last event, every
// chain's head, the writers registered by then and the messages
// quarantined before it.
type Resume struct {
	Head chain.Head
	// Chains is every chain's head at Head.Seq; nil for a snapshot of a
	// ledger from before chains, whose only chain ends at Head.
	Chains      map[string]chain.ChainHead
	Writers     map[string]ed25519.PublicKey
	Revoked     map[string]chain.Revocation // nil in snapshots from before revocation
	Quarantined []uint64                    // stream sequences, all at or before Head.Seq
	// QuarantinedChains names the chain of each quarantined message (if
	// known): a chain's next message is signed after it.
	QuarantinedChains map[uint64]string
}

// folder is the fold r continues.
func (r Resume) folder() *chain.Folder {
	if r.Chains == nil {
		st := chain.ResumeFolder(r.Head, r.Writers).State()
		st.Revoked = r.Revoked
		return chain.ResumeFolderAt(st)
	}
	chains := make(map[string]chain.ChainHead, len(r.Chains))
	for name, c := range r.Chains {
		chains[name] = c
	}
	for seq, name := range r.QuarantinedChains {
		if c := chains[name]; seq <= r.Head.Seq && seq > c.Last {
			c.Last = seq
			chains[name] = c
		}
	}
	return chain.ResumeFolderAt(chain.State{Head: r.Head, Chains: chains, Writers: r.Writers, Revoked: r.Revoked})
}

// ReplayFrom is Replay continued from a snapshot: it folds the messages
// after r.Head.Seq (authenticating and linking each to its chain's head in
// r, quarantining what fails) and calls fn for every accepted event.
// Called before Start, it builds the follower's folder. r.Head must be an
// event the ledger holds (EventHashAt).
func (l *Ledger) ReplayFrom(ctx context.Context, r Resume, fn func(event.Record) error) (chain.Head, error) {
	if l.started.Load() {
		return chain.Head{}, errors.New("ledger: ReplayFrom after Start")
	}
	f := r.folder()
	l.fold = f
	l.anchors.reset()
	l.qmu.Lock()
	l.qseqs = map[uint64]string{}
	l.qfirst = nil
	for _, seq := range r.Quarantined {
		l.qseqs[seq] = r.QuarantinedChains[seq]
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
		for _, rec := range l.foldMessage(f, l.message(m, seq)) {
			if err := fn(rec); err != nil {
				return err
			}
		}
		return nil
	})
	return f.Head(), err
}

// Start begins following the stream and writing, after what Replay or
// ReplayFrom folded (head is what they returned).
func (l *Ledger) Start(head chain.Head) {
	l.fmu.Lock()
	l.folded.Store(l.fold.Through())
	l.target.Store(l.fold.Through())
	l.fmu.Unlock()
	l.started.Store(true)
	l.watchConnection()
	l.listenForNotices()
	l.listenForContention()
	go l.follower()
	go l.writer()
}

// Head returns the last event folded, in stream order.
func (l *Ledger) Head() chain.Head {
	l.fmu.Lock()
	defer l.fmu.Unlock()
	return l.fold.Head()
}

// Close stops the writer after the events already queued are settled,
// and the follower once it folded what this instance appended (or after
// PublishTimeout).
func (l *Ledger) Close() {
	l.stopOnce.Do(func() {
		close(l.stop)
		if !l.started.Load() {
			close(l.done)
			close(l.followDone)
			return
		}
		<-l.done
		l.stopFollower()
	})
	<-l.done
	<-l.followDone
}
