// Package node assembles one keyledger instance from its parts: it opens the
// ledger and material store on a backend, rebuilds the key state by replaying
// the ledger (checking every link), starts the group-commit writer, the
// scheduler and the AWS JSON gateway. cmd/ and the end-to-end tests both
// start instances through it, so they run the same wiring.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/gateway/auditapi"
	"github.com/keyledger/keyledger/gateway/awsjson"
	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/gateway/principals"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/projections/keystate"
)

// Config describes one instance.
type Config struct {
	Region  string
	RootKey rootkey.Key
	// Principals are who may call, with their secrets and identity policies.
	Principals *principals.Directory
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
	CheckpointInterval time.Duration // default 10s
	Logger             *slog.Logger
	// DataDir is the embedded ledger's directory, whose disk Ready watches
	// ("" with an external NATS).
	DataDir string
	// HTTP bounds connections and timeouts of the gateway.
	HTTP awsjson.Limits
	// TileCache is how many Merkle tiles (8 KiB each) are kept in memory
	// beyond the tree's right edge (default 256).
	TileCache int
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now().UTC() }

// Node is a running instance. Its exported fields are the parts a caller
// (cmd, the end-to-end tests) may inspect or drive directly.
type Node struct {
	Ledger       *ledger.Ledger
	Materials    *material.Store
	State        *keystate.State
	Checkpointer *ledger.Checkpointer
	Service      *keyservice.Service

	cfg           Config
	feed          *ledger.Feed
	hub           *auditapi.Hub
	http          *awsjson.Server
	audit         *auditapi.API
	stopScheduler context.CancelFunc
	schedulerDone chan struct{} // closed when the scheduler, checkpointer and feed stopped
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
		repaired, err := tree.Flush(ctx)
		if repaired > 0 {
			logger.Warn("merkle tiles that were missing or did not match the ledger were written again", "tiles", repaired)
		}
		if err != nil && ctx.Err() == nil {
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
	state := keystate.New()
	tiles, err := b.OpenTiles(ctx, cfg.Ledger.Stream)
	if err != nil {
		return nil, err
	}
	if cfg.TileCache == 0 {
		cfg.TileCache = 256
	}
	tree := merkle.New(tiles, cfg.TileCache)
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
	feedCh := make(chan []event.Record, 4096)
	var feedLive, feedLost atomic.Bool
	fold := func(recs []event.Record) {
		state.Apply(recs)
		for _, r := range recs {
			if err := tree.Append(r.Raw); err != nil {
				cfg.Logger.Error("merkle tree append failed", "error", err)
			}
		}
		if feedLive.Load() {
			select { // never block the writer: subscribers catch up from the ledger
			case feedCh <- recs:
			default:
				feedLost.Store(true)
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
	mats, err := b.OpenMaterials(ctx, cfg.Materials)
	if err != nil {
		return nil, err
	}
	replayStart := time.Now()
	head, err := l.Replay(ctx, chain.Head{}, func(r event.Record) error {
		fold([]event.Record{r})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("node: replaying the ledger: %w", err)
	}
	cfg.Logger.Info("ledger replayed", "events", head.Count, "head", head.Hash.String(), "took", time.Since(replayStart).Round(time.Millisecond))
	l.Start(head)
	if err := registerWriter(ctx, l, cfg); err != nil {
		l.Close()
		return nil, err
	}

	if err := recordPrincipals(ctx, l, state, cfg); err != nil {
		l.Close()
		return nil, err
	}
	svc := keyservice.New(keyservice.Config{
		Region: cfg.Region, Clock: cfg.Clock, Ledger: l, State: state,
		Materials: mats, RootKey: cfg.RootKey, Principals: cfg.Principals, Logger: cfg.Logger,
	})
	if err := svc.Sweep(ctx); err != nil {
		l.Close()
		return nil, fmt.Errorf("node: finishing material destruction: %w", err)
	}
	checkpoints, err := b.OpenCheckpoints(ctx, lcfg.Stream)
	if err != nil {
		l.Close()
		return nil, err
	}
	feed := b.Feed(lcfg.Stream)
	hub := &auditapi.Hub{}
	feedLive.Store(true)
	sctx, cancel := context.WithCancel(context.Background())
	var n *Node
	http := awsjson.New(svc, awsjson.Options{Principals: cfg.Principals, Region: cfg.Region, Now: cfg.AuthClock, Logger: cfg.Logger,
		Limits: cfg.HTTP, Ready: func(ctx context.Context) error { return n.Ready(ctx) }})
	if cfg.CheckpointOrigin == "" {
		cfg.CheckpointOrigin = "keyledger/" + cfg.Region
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = 10 * time.Second
	}
	cp := ledger.NewCheckpointer(ledger.CheckpointerConfig{Tree: tree, Store: checkpoints,
		Signer: cfg.CheckpointSigner, Verifier: cfg.CheckpointVerifier, Origin: cfg.CheckpointOrigin})
	n = &Node{Ledger: l, Materials: mats, State: state, Checkpointer: cp, Service: svc,
		cfg: cfg, feed: feed, hub: hub, http: http, stopScheduler: cancel, schedulerDone: make(chan struct{}),
		stopTiles: stopTiles, tilesDone: tilesDone}
	started = true
	n.audit = auditapi.Register(http, auditapi.Config{Service: svc, Checkpoints: cp, Chain: l, History: l, Hub: hub,
		Clock: cfg.Clock, Region: cfg.Region})
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
	go func() {
		wg.Wait()
		close(n.schedulerDone)
	}()
	return n, nil
}

// recordPrincipals appends a PrincipalsConfigured event when the principals
// configuration differs from the one the ledger last recorded, so every
// change of who may do what is in the audit trail.
func recordPrincipals(ctx context.Context, l *ledger.Ledger, state *keystate.State, cfg Config) error {
	summary, hash := cfg.Principals.Summary()
	if state.PrincipalsHash() == hash {
		return nil
	}
	ev := &event.Event{Time: cfg.Clock.Now(), Operation: "UpdatePrincipals", Region: cfg.Region,
		Body: &event.PrincipalsConfigured{Summary: summary, Hash: hash}}
	if _, err := l.Append(ctx, ev); err != nil {
		return fmt.Errorf("node: recording the principals configuration: %w", err)
	}
	cfg.Logger.Info("principals configuration recorded in the ledger", "hash", hash)
	return nil
}

// Serve answers AWS KMS requests on ln until Close.
func (n *Node) Serve(ln net.Listener) error { return n.http.Serve(ln) }

// Close stops taking requests, lets in-flight ones finish, then stops the
// scheduler and the ledger writer. The backend is the caller's to close.
func (n *Node) Close(ctx context.Context) error {
	n.audit.Close()
	err := n.http.Shutdown(ctx)
	n.stopScheduler()
	<-n.schedulerDone
	n.Ledger.Close()
	n.stopTiles()
	<-n.tilesDone
	return err
}
