// Package node assembles one keyledger instance from its parts: it opens the
// ledger and material store on a backend, rebuilds the key state by replaying
// the ledger (checking every link), starts the group-commit writer, the
// scheduler and the AWS JSON gateway. cmd/ and the end-to-end tests both
// start instances through it, so they run the same wiring.
package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/gateway/auditapi"
	"github.com/keyledger/keyledger/gateway/awsjson"
	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/gateway/metrics"
	"github.com/keyledger/keyledger/gateway/principals"
	"github.com/keyledger/keyledger/gateway/rootapi"
	"github.com/keyledger/keyledger/gateway/throttle"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/feed"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/snapshot"
	"github.com/keyledger/keyledger/projections/compliance"
	"github.com/keyledger/keyledger/projections/keystate"
	"github.com/keyledger/keyledger/projections/resume"
)

// Config describes one instance.
type Config struct {
	Region string
	// RootKey wraps key material: a rootkey.Key, or the *rootkey.Ring a
	// RootSeal opens (sealed until then).
	RootKey keyservice.RootKey
	// RootSeal keeps a sealed root key (nil for a plaintext root key
	// file): it serves unsealing by shares and root key rotation.
	RootSeal RootSeal
	// Principals are who may call, with their secrets and identity policies.
	Principals *principals.Directory
	// OperatorAccount is the account whose principals may unseal and
	// rotate the root key (as their identity policies allow); "" means
	// nobody may.
	OperatorAccount string
	// AuthClock is what SigV4 timestamps are checked against (default: the
	// wall clock, which is what clients sign with).
	AuthClock func() time.Time
	// Clock drives deletion windows; nil means the wall clock.
	Clock keyservice.Clock
	// SchedulerInterval is how often due work is checked (default 1s).
	SchedulerInterval time.Duration
	Ledger            ledger.Config
	Materials         material.Config
	// CheckpointSigner signs the Merkle tree's checkpoints; nil means no
	// checkpoints. CheckpointVerifier is its public key (note vkey).
	// CheckpointOrigin names the log in them.
	CheckpointSigner   note.Signer
	CheckpointVerifier string
	CheckpointOrigin   string
	CheckpointInterval time.Duration // default DefaultCheckpointInterval
	Logger             *slog.Logger
	// DataDir is the embedded ledger's directory, whose disk Ready watches
	// ("" with an external NATS).
	DataDir string
	// HTTP bounds connections and timeouts of the gateway.
	HTTP awsjson.Limits
	// Throttle limits request rates per account (nil: no throttling);
	// its refusals are recorded in the ledger as one summary event per
	// account and family every ThrottleReportInterval (default 1s).
	Throttle               *throttle.Limiter
	ThrottleReportInterval time.Duration
	// Metrics, if set, receives the instance's figures (see Instrument).
	Metrics *metrics.Metrics
	// Snapshots tune snapshots of the projections and the background
	// verification of the whole chain.
	Snapshots Snapshots
	// MaterialCheckInterval is how often every live key material is read
	// again from both stored copies (default
	// DefaultMaterialCheckInterval; negative: only at start).
	MaterialCheckInterval time.Duration
	// TileCache is how many Merkle tiles (8 KiB each) are kept in memory
	// beyond the tree's right edge (default 256).
	TileCache int
}

// RootSeal is a sealed root key's keeper (a *seal.Keeper).
type RootSeal interface {
	keyservice.Unsealer
	keyservice.RootKeeper
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now().UTC() }

// Node is a running instance. Its exported fields are the parts a caller
// (cmd, the end-to-end tests) may inspect or drive directly.
type Node struct {
	Ledger       *ledger.Ledger
	Materials    *material.Store
	State        *keystate.State
	Projections  *resume.Projections
	Checkpointer *checkpoint.Checkpointer
	Service      *keyservice.Service
	// Rotation rotates the root key (nil without a RootSeal).
	Rotation *keyservice.RootRotation

	cfg           Config
	feed          *feed.Feed
	hub           *auditapi.Hub
	http          *awsjson.Server
	audit         *auditapi.API
	stopScheduler context.CancelFunc
	schedulerDone chan struct{} // closed when the scheduler, checkpointer, feed, snapshotter, verifier and throttle reporter stopped

	feedOverflows *atomic.Uint64 // batches the commit hook could not queue for the feed
	feedErrors    atomic.Uint64  // failed publishes to the NATS feed
	snapshots     *snapshotter   // nil when snapshots are off
	snapStore     *snapshot.Store
	verifier      *verifier
	materials     *materialWatch
	stopTiles     context.CancelFunc
	tilesDone     chan struct{} // closed when the tile flusher stopped
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

// runFeed announces committed events on the NATS feed and to live HTTP
// subscribers, off the request path. If the commit hook's queue ever
// overflowed, subscribers are told to catch up from the ledger.
func (n *Node) runFeed(ctx context.Context, in <-chan []event.Record, lost *atomic.Bool) {
	for {
		select {
		case <-ctx.Done():
			return
		case recs := <-in:
			if lost.Swap(false) {
				n.hub.Lag()
			}
			if err := n.feed.Publish(recs); err != nil && ctx.Err() == nil {
				n.feedErrors.Add(1)
				n.cfg.Logger.Debug("audit feed publish failed", "error", err)
			}
			n.hub.Broadcast(recs)
		}
	}
}

// Start builds and starts an instance on b.
func Start(ctx context.Context, b *backend.Backend, cfg Config) (*Node, error) {
	if cfg.Clock == nil {
		cfg.Clock = wallClock{}
	}
	if cfg.SchedulerInterval == 0 {
		cfg.SchedulerInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Region == "" || cfg.Principals == nil {
		return nil, errors.New("node: region and principals are required")
	}
	tiles, err := b.OpenTiles(ctx, cfg.Ledger.Stream)
	if err != nil {
		return nil, err
	}
	if cfg.TileCache == 0 {
		cfg.TileCache = 256
	}
	tr := trees{store: tiles, cache: cfg.TileCache}
	cfg.Snapshots.setDefaults()
	// Start-up, in order: open the ledger; restore the projections from the
	// newest snapshot that still matches it (or start empty); fold and
	// link-check the tail after it; start writing. The whole chain is then
	// verified in the background (verifier), as `audit verify` does.
	var proj *resume.Projections
	var snaps *snapshotter
	feedCh := make(chan []event.Record, 4096)
	var feedLive, feedLost atomic.Bool
	var feedOverflows atomic.Uint64
	fold := func(recs []event.Record) {
		if cfg.Metrics != nil {
			cfg.Metrics.Committed(len(recs))
		}
		proj.Apply(recs)
		snaps.folded(len(recs))
		if feedLive.Load() {
			select { // never block the writer: subscribers catch up from the ledger
			case feedCh <- recs:
			default:
				feedLost.Store(true)
				feedOverflows.Add(1)
			}
		}
	}
	lcfg := cfg.Ledger
	lcfg.OnCommit = fold
	lcfg.Logger = cfg.Logger
	l, err := b.OpenLedger(ctx, lcfg)
	if err != nil {
		return nil, err
	}
	// After a removed segment the tree continues from the base's frontier
	// (its tiles are kept), and must have the base's root there.
	start, err := l.TiledTree(tiles, cfg.TileCache)
	if err == nil {
		err = l.CheckBaseTree(start.Root)
	}
	if err != nil {
		return nil, fmt.Errorf("node: refusing to start: the ledger's base: %w", err)
	}
	tr.l = l
	mats, err := b.OpenMaterials(ctx, cfg.Materials)
	if err != nil {
		return nil, err
	}
	var store *snapshot.Store
	if !cfg.Snapshots.Off {
		if store, err = b.OpenSnapshots(ctx, lcfg.Stream); err != nil {
			return nil, err
		}
	}
	checkpoints, err := b.OpenCheckpoints(ctx, lcfg.Stream)
	if err != nil {
		return nil, err
	}
	// The newest checkpoint is read before the replay: one stored meanwhile
	// (by another instance) may cover events the replay does not reach.
	newest, err := newestCheckpoint(ctx, checkpoints, cfg)
	if err != nil {
		return nil, err
	}
	replayStart := time.Now()
	onTree := func(err error) { cfg.Logger.Error("merkle tree append failed", "error", err) }
	r := restore(ctx, l, store, cfg, tr, onTree)
	if r.resume == nil && l.FirstIndex() > 0 {
		// Key state lives in events; those before the base were removed.
		return nil, fmt.Errorf("node: refusing to start: the live ledger starts at event %d after a removed segment, "+
			"and no snapshot at or after it restores the key state (snapshots: %v)", l.FirstIndex(), !cfg.Snapshots.Off)
	}
	proj = r.proj
	tree, state := r.tree, proj.State
	// A tile lost or garbled in the bucket after start-up is rebuilt from
	// the events under it when a proof needs it (checked, then stored).
	tree.RepairFrom(l.LeavesFrom)
	// Completed tiles are stored as the tail folds and while serving.
	tctx, stopTiles := context.WithCancel(context.Background())
	tilesDone := make(chan struct{})
	go func() {
		defer close(tilesDone)
		runTiles(tctx, tree, cfg.Logger)
	}()
	started := false
	defer func() {
		if !started {
			stopTiles()
			<-tilesDone
		}
	}()
	if store != nil && lcfg.Writer != nil {
		snaps = &snapshotter{cfg: cfg.Snapshots, proj: proj, l: l, store: store, tree: tree, key: lcfg.Writer, log: cfg.Logger,
			kick: make(chan struct{}, 1)}
		if r.rebuilt {
			snaps.soon()
		}
	}
	head, err := replayTail(ctx, l, r, fold, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("node: replaying the ledger: %w", err)
	}
	tail := head.Count
	if r.resume != nil {
		tail -= r.resume.Head.Count
	}
	cfg.Logger.Info("ledger replayed", "events", head.Count, "tail_folded", tail, "from_snapshot", r.resume != nil,
		"head", head.Hash.String(), "took", time.Since(replayStart).Round(time.Millisecond))
	if newest != nil {
		if err := checkpoint.CheckExtends(*newest, tree.Size(), tree.Root); err != nil {
			return nil, fmt.Errorf("node: refusing to start: %w", err)
		}
	}
	// After removed segments every fold from the base (the background
	// verifier, audit) trusts the writers it names; the fold from this
	// instance's own snapshot vouches for them, not the base bucket.
	if err := l.CheckBaseWriters(l.Writers(), "the fold from this instance's snapshot"); err != nil {
		return nil, fmt.Errorf("node: refusing to start: %w", err)
	}
	l.Start(head)
	if err := registerWriter(ctx, l, cfg); err != nil {
		l.Close()
		return nil, err
	}

	if err := recordPrincipals(ctx, l, state, cfg); err != nil {
		l.Close()
		return nil, err
	}
	var appender keyservice.Ledger = l
	if cfg.Metrics != nil {
		appender = timedLedger{l, cfg.Metrics}
	}
	svc := keyservice.New(keyservice.Config{
		Region: cfg.Region, Clock: cfg.Clock, Ledger: appender, State: state,
		Materials: mats, RootKey: cfg.RootKey, Principals: cfg.Principals, Logger: cfg.Logger,
		OperatorAccount: cfg.OperatorAccount,
	})
	if err := svc.Sweep(ctx); err != nil {
		l.Close()
		return nil, fmt.Errorf("node: finishing material destruction: %w", err)
	}
	mwatch := &materialWatch{svc: svc, log: cfg.Logger}
	mwatch.check(ctx) // before serving: repair, or say which keys are lost
	feed := b.Feed(lcfg.Stream)
	hub := &auditapi.Hub{}
	feedLive.Store(true)
	sctx, cancel := context.WithCancel(context.Background())
	var n *Node
	http := awsjson.New(svc, awsjson.Options{Principals: cfg.Principals, Region: cfg.Region, Now: cfg.AuthClock, Logger: cfg.Logger,
		Limits: cfg.HTTP, Ready: func(ctx context.Context) error { return n.Ready(ctx) },
		Limiter: cfg.Throttle, Observer: observer(cfg.Metrics), Sealed: svc.Sealed})
	var rotation *keyservice.RootRotation
	if cfg.RootSeal != nil {
		rotation = svc.NewRootRotation(sctx, cfg.RootSeal, mats)
		var unseal *keyservice.Unseal
		if cfg.RootSeal.Mode() == "shamir" {
			unseal = svc.NewUnseal(cfg.RootSeal, rotation.Resume)
		}
		rootapi.Register(http, unseal, rotation)
	}
	if cfg.CheckpointOrigin == "" {
		cfg.CheckpointOrigin = "keyledger/" + cfg.Region
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	cp := checkpoint.NewCheckpointer(checkpoint.Config{Tree: tree, Store: checkpoints,
		Signer: cfg.CheckpointSigner, Verifier: cfg.CheckpointVerifier, Origin: cfg.CheckpointOrigin, Writers: l.Writers})
	n = &Node{Ledger: l, Materials: mats, State: state, Projections: proj, Checkpointer: cp, Service: svc, Rotation: rotation,
		cfg: cfg, feed: feed, hub: hub, http: http, stopScheduler: cancel, schedulerDone: make(chan struct{}),
		feedOverflows: &feedOverflows, snapshots: snaps, snapStore: store, verifier: &verifier{diagnose: diagnoser(b, lcfg.Stream)}, materials: mwatch,
		stopTiles: stopTiles, tilesDone: tilesDone}
	started = true
	n.audit = auditapi.Register(http, auditapi.Config{Service: svc, Checkpoints: cp, Chain: l, History: l, Hub: hub,
		Clock: cfg.Clock, Region: cfg.Region, Reports: n, Past: n})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		svc.RunScheduler(sctx, cfg.SchedulerInterval)
	}()
	if cfg.CheckpointSigner != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cp.Run(sctx, cfg.CheckpointInterval, cfg.Logger)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.runFeed(sctx, feedCh, &feedLost)
	}()
	if snaps != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snaps.run(sctx)
		}()
	}
	if cfg.Snapshots.VerifyRate > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.verifier.run(sctx, l, cfg.Snapshots.VerifyRate, cfg.Logger)
		}()
	}
	if cfg.MaterialCheckInterval >= 0 {
		every := cfg.MaterialCheckInterval
		if every == 0 {
			every = DefaultMaterialCheckInterval
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			mwatch.run(sctx, every)
		}()
	}
	if cfg.Throttle != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.reportThrottled(sctx)
		}()
	}
	if cfg.Metrics != nil {
		n.instrument(cfg.Metrics)
	}
	go func() {
		wg.Wait()
		close(n.schedulerDone)
	}()
	return n, nil
}

// diagnoser reads the embedded server's block files of a damaged ledger
// and summarises what they hold and what is lost.
func diagnoser(b *backend.Backend, stream string) func(context.Context) string {
	return func(ctx context.Context) string {
		rep, err := b.Diagnose(ctx, stream)
		if err != nil {
			return "cannot be read: " + err.Error()
		}
		if rep == nil {
			return ""
		}
		return strings.ReplaceAll(strings.TrimSpace(rep.Summary()), "\n", "; ")
	}
}

// Live is the instance's live key state and compliance aggregates, which
// reports read instead of the ledger.
func (n *Node) Live() (*keystate.State, *compliance.Aggregates) { return n.State, n.Projections.Agg }

// Integrity is the background verifier's outcome (nil while it runs).
func (n *Node) Integrity() *compliance.Integrity { return n.verifier.Integrity() }

// ImageAt is the newest snapshot of the projections whose events all
// happened at or before t, signed by this instance's writer key and still
// matching the ledger; nil when there is none (time travel then folds from
// the first event).
func (n *Node) ImageAt(ctx context.Context, t time.Time) (*resume.Image, error) {
	own := n.cfg.Ledger.Writer
	if n.snapStore == nil || own == nil {
		return nil, nil
	}
	return ImageAt(ctx, n.Ledger, n.snapStore, t, func(id string) ed25519.PublicKey {
		if id == own.ID() {
			return own.Public()
		}
		return nil
	}, n.cfg.Logger)
}

// Snapshot takes a snapshot of the projections now (tests, and an operator
// before a planned restart).
func (n *Node) Snapshot(ctx context.Context) error {
	if n.snapshots == nil {
		return errors.New("node: snapshots are off")
	}
	n.snapshots.pending.Add(1)
	return n.snapshots.take(ctx)
}

// recordPrincipals appends a PrincipalsConfigured event when the principals
// configuration differs from the one the ledger last recorded, so every
// change of who may do what is in the audit trail.
func recordPrincipals(ctx context.Context, l *ledger.Ledger, state *keystate.State, cfg Config) error {
	summary, hash := cfg.Principals.Summary()
	if state.PrincipalsHash() == hash {
		return nil
	}
	if _, err := l.Append(ctx, keyservice.PrincipalsConfiguration(cfg.Clock.Now(), cfg.Region, summary, hash)); err != nil {
		return fmt.Errorf("node: recording the principals configuration: %w", err)
	}
	cfg.Logger.Info("principals configuration recorded in the ledger", "hash", hash)
	return nil
}

// Serve answers AWS KMS requests on ln until Close.
func (n *Node) Serve(ln net.Listener) error { return n.http.Serve(ln) }

// Close stops taking requests, lets in-flight ones finish, then stops the
// scheduler and the ledger writer, and stores a checkpoint of everything
// written, so a clean shutdown leaves no event uncovered. The backend is
// the caller's to close.
func (n *Node) Close(ctx context.Context) error {
	n.audit.Close()
	err := n.http.Shutdown(ctx)
	n.stopScheduler()
	<-n.schedulerDone
	if n.cfg.RootSeal != nil && !n.Service.Sealed() {
		if rerr := n.Service.RecordSealed(ctx, n.cfg.RootSeal.Mode()); rerr != nil {
			n.cfg.Logger.Warn("could not record sealing the root key", "error", rerr)
		}
	}
	n.Ledger.Close()
	// A snapshot of the final state: the next start, and reports and time
	// travel on the stopped data directory, fold nothing after it.
	if n.snapshots != nil && !n.cfg.Snapshots.NotAtShutdown && n.snapshots.pending.Load() > 0 {
		if serr := n.snapshots.take(ctx); serr != nil {
			n.cfg.Logger.Warn("no snapshot at shutdown", "error", serr)
		}
	}
	if n.cfg.CheckpointSigner != nil && n.Checkpointer.Tree().Size() > 0 {
		if _, cerr := n.Checkpointer.Checkpoint(ctx); cerr != nil {
			n.cfg.Logger.Warn("no checkpoint at shutdown", "error", cerr)
		}
	}
	n.stopTiles()
	<-n.tilesDone
	return err
}
