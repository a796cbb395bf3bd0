package node

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
)

// The instance's background goroutines. Each is started by one named
// method below (startX), runs until its context ends, and is owned by the
// Node through a task: Close stops the workers in the reverse order they
// were started, each waited for, while the ledger still takes appends
// (the throttle reporter and the scheduler append on their way out); the
// tile flusher, started first, stops last, after the final checkpoint.
// Nothing else in the package starts a goroutine, except the ledger's own
// writer (Ledger.Start and Ledger.Close).

// task is one background goroutine: its name (in logs and tests), how to
// stop it and when it has stopped.
type task struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
}

// goTask runs fn on a new goroutine until the task is stopped.
func goTask(name string, fn func(ctx context.Context)) *task {
	ctx, cancel := context.WithCancel(context.Background())
	t := &task{name: name, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		fn(ctx)
	}()
	return t
}

// stop ends the task and waits for it; safe on nil and twice.
func (t *task) stop() {
	if t == nil {
		return
	}
	t.cancel()
	<-t.done
}

// workers are the tasks that stop before the ledger closes, in reverse
// start order.
type workers []*task

func (w *workers) start(name string, fn func(ctx context.Context)) {
	*w = append(*w, goTask(name, fn))
}

func (w *workers) stopAll() {
	for i := len(*w) - 1; i >= 0; i-- {
		(*w)[i].stop()
	}
	*w = nil
}

// startTiles starts the tile flusher: the Merkle tree's completed tiles
// are stored as they complete (start-up's replay included), and once more
// when it stops.
func (n *Node) startTiles() {
	n.tiles = goTask("tiles", func(ctx context.Context) { runTiles(ctx, n.tree, n.cfg.Logger) })
}

// startRegistration waits, on an instance whose writer key is not
// registered yet, until the ledger registers it (another instance recorded
// the registration an operator asked for), then records the principals
// configuration it serves with.
func (n *Node) startRegistration() {
	w := n.cfg.Ledger.Writer
	if w == nil || n.Ledger.Registered(w.ID()) {
		return
	}
	n.workers.start("registration", func(ctx context.Context) {
		whenRegistered(ctx, n.Ledger, w.ID(), n.cfg.Logger, func() {
			if err := recordPrincipals(ctx, n.Ledger, n.State, n.cfg); err != nil {
				n.cfg.Logger.Error("recording the principals configuration", "error", err)
			}
		})
	})
}

// startScheduler turns due work (deletion, rotation, expiry) into events
// while this instance holds the scheduler lease, and releases the lease as
// it stops.
func (n *Node) startScheduler() {
	n.workers.start("scheduler", func(ctx context.Context) { n.Scheduler.Run(ctx, n.cfg.SchedulerInterval) })
}

// startCheckpointer stores a signed checkpoint every CheckpointInterval
// when the tree grew (only with a checkpoint signer).
func (n *Node) startCheckpointer() {
	if n.cfg.CheckpointSigner == nil {
		return
	}
	n.workers.start("checkpointer", func(ctx context.Context) { n.Checkpointer.Run(ctx, n.cfg.CheckpointInterval, n.cfg.Logger) })
}

// startFeed announces committed events on NATS and to SSE subscribers.
func (n *Node) startFeed() {
	n.live.on.Store(true)
	n.workers.start("feed", n.runFeed)
}

// startSnapshotter takes snapshots of the projections (when enabled).
func (n *Node) startSnapshotter() {
	if n.snapshots == nil {
		return
	}
	n.workers.start("snapshotter", n.snapshots.run)
}

// startVerifier walks the whole chain once in the background (unless
// VerifyRate turns it off).
func (n *Node) startVerifier() {
	if n.cfg.Snapshots.VerifyRate <= 0 {
		return
	}
	n.workers.start("verifier", func(ctx context.Context) {
		n.verifier.run(ctx, n.Ledger, n.cfg.Snapshots.VerifyRate, n.cfg.Logger)
	})
}

// startThrottleReporter records throttled requests in the ledger (with a
// throttle), once more as it stops.
func (n *Node) startThrottleReporter() {
	if n.cfg.Throttle == nil {
		return
	}
	n.workers.start("throttle-reporter", n.reportThrottled)
}

// startRootFollower makes the instance take up root key versions another
// instance made or retired (with a sealed root key): when the fold sees a
// root key rotation or retirement, and every rootFollowInterval in case a
// notice was missed.
func (n *Node) startRootFollower() {
	if n.Rotation == nil {
		return
	}
	n.workers.start("root-follower", func(ctx context.Context) { n.rootFollower.run(ctx, n.Rotation, n.cfg.Logger) })
}

// rootFollowInterval is how often the root follower looks at the shared
// seal without being told to.
const rootFollowInterval = 30 * time.Second

// rootFollower is told by the fold when the ledger names new root key
// versions.
type rootFollower struct {
	kick chan struct{}
}

// noticeRoot kicks the follower if recs rotate or retire a root key
// version; it never blocks the ledger writer.
func (f *rootFollower) noticeRoot(recs []event.Record) {
	for _, r := range recs {
		switch r.Event.Body.(type) {
		case *event.RootRotationStarted, *event.RootVersionRetired:
			if r.Event.Refused() {
				continue
			}
			select {
			case f.kick <- struct{}{}:
			default:
			}
			return
		}
	}
}

func (f *rootFollower) run(ctx context.Context, rot *keyservice.RootRotation, log *slog.Logger) {
	tick := time.NewTicker(rootFollowInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		case <-tick.C:
		}
		if err := rot.Follow(ctx); err != nil && ctx.Err() == nil {
			log.Error("cannot take the root key versions of the shared seal; will retry", "error", err)
		}
	}
}

// runTiles stores the Merkle tree's completed tiles as they complete, and
// once more when ctx ends. Tiles that were missing or wrong in the store
// (a crash while writing one, or tampering) are written again from the
// replayed ledger and logged.
func runTiles(ctx context.Context, tree *merkle.Tree, logger *slog.Logger) {
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	flush := func(ctx context.Context) {
		if err := storeTiles(ctx, tree, logger); err != nil && ctx.Err() == nil {
			logger.Warn("storing merkle tiles failed; will retry", "pending", tree.Pending(), "error", err)
		}
	}
	completed := tree.Completed()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			flush(fctx)
			cancel()
			return
		case <-completed:
			flush(ctx)
		case <-retry.C:
			if tree.Pending() > 0 {
				flush(ctx)
			}
		}
	}
}

// liveFeed is the queue between the commit hook and the feed task.
type liveFeed struct {
	ch        chan []event.Record
	on        atomic.Bool   // the feed task runs: commits are queued
	lost      atomic.Bool   // a commit was dropped since the last one sent
	overflows atomic.Uint64 // commits the hook could not queue
	errors    atomic.Uint64 // failed publishes to the NATS feed
}

func newLiveFeed() *liveFeed { return &liveFeed{ch: make(chan []event.Record, 4096)} }

// offer queues recs for the feed without ever blocking the ledger writer:
// subscribers catch up from the ledger.
func (f *liveFeed) offer(recs []event.Record) {
	if !f.on.Load() {
		return
	}
	select {
	case f.ch <- recs:
	default:
		f.lost.Store(true)
		f.overflows.Add(1)
	}
}

// runFeed announces committed events on the NATS feed and to live HTTP
// subscribers, off the request path. If the commit hook's queue ever
// overflowed, subscribers are told to catch up from the ledger.
func (n *Node) runFeed(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case recs := <-n.live.ch:
			if n.live.lost.Swap(false) {
				n.hub.Lag()
			}
			if err := n.feed.Publish(recs); err != nil && ctx.Err() == nil {
				n.live.errors.Add(1)
				n.cfg.Logger.Debug("audit feed publish failed", "error", err)
			}
			n.hub.Broadcast(recs)
		}
	}
}
