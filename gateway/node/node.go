package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/gateway/auditapi"
	"github.com/keyledger/keyledger/gateway/awsjson"
	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/gateway/metrics"
	"github.com/keyledger/keyledger/gateway/principals"
	"github.com/keyledger/keyledger/gateway/throttle"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/feed"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/replication"
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
	// SchedulerLeaseTTL is how long the scheduler lease outlives its
	// holder's last renewal: how soon another instance takes the
	// scheduler over when its holder dies (default 5s).
	SchedulerLeaseTTL time.Duration
	// Instance names this instance in the scheduler lease and the ledger
	// (default: the host name and a random suffix).
	Instance  string
	Ledger    ledger.Config
	Materials material.Config
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
	// MultiRegion, if set, replicates multi-Region keys to and from other
	// regions (multiregion.go).
	MultiRegion *MultiRegion
	// SeedDev lets seeds (POST /seed) bring key material for AWS_KMS keys:
	// development mode (serve --seed-dev), for test fixtures only.
	SeedDev bool
	// MaterialCheckInterval is how often every live key material is read
	// again from both stored copies (default
	// DefaultMaterialCheckInterval; negative: only at start).
	MaterialCheckInterval time.Duration
	// TileCache is how many Merkle tiles (8 KiB each) are kept in memory
	// beyond the tree's right edge (default 256).
	TileCache int

	// onPhase, if set, is called as the instance enters each phase (tests).
	onPhase func(n *Node, phase string)
	// wrapLeases and wrapLedger, if set, wrap what the scheduler and the
	// service use (tests: pausing renewals and appends).
	wrapLeases func(keyservice.Leases) keyservice.Leases
	wrapLedger func(keyservice.Ledger) keyservice.Ledger
	// routed is set for a region other than the front of a multi-region
	// process (regions.go): its HTTP front is reached through the front's.
	routed bool
}

// RootSeal is a sealed root key's keeper (a *seal.Keeper).
type RootSeal interface {
	keyservice.Unsealer
	keyservice.RootKeeper
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now().UTC() }

// setDefaults fills in what cfg leaves zero and refuses what it lacks.
func (cfg *Config) setDefaults() error {
	if cfg.Region == "" || cfg.Principals == nil {
		return errors.New("node: region and principals are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = wallClock{}
	}
	if cfg.SchedulerInterval == 0 {
		cfg.SchedulerInterval = time.Second
	}
	if cfg.SchedulerLeaseTTL == 0 {
		cfg.SchedulerLeaseTTL = DefaultSchedulerLeaseTTL
	}
	if cfg.Instance == "" {
		cfg.Instance = instanceName(cfg.DataDir)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TileCache == 0 {
		cfg.TileCache = 256
	}
	if cfg.CheckpointOrigin == "" {
		cfg.CheckpointOrigin = "keyledger/" + cfg.Region
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	cfg.Snapshots.setDefaults()
	return nil
}

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
	// Scheduler carries out due work while this instance holds the
	// scheduler lease.
	Scheduler *keyservice.Scheduler
	// Replicator exchanges multi-Region keys with other regions (nil
	// without Config.MultiRegion).
	Replicator *keyservice.Replicator

	cfg   Config
	b     *backend.Backend // the caller's; kept for the phases that open its stores
	phase atomic.Pointer[string]

	// What the start-up phases hand on to the next (phases.go).
	trees       trees
	tree        *merkle.Tree
	checkpoints *checkpoint.Store
	newest      *merkle.Checkpoint // the newest checkpoint of ours the ledger must extend
	restored    restored
	head        chain.Head // where the replay ended and the writer starts
	writing     bool       // Ledger.Start ran: Close must close the ledger

	feed      *feed.Feed
	live      *liveFeed
	hub       *auditapi.Hub
	http      *awsjson.Server
	audit     *auditapi.API
	snapshots *snapshotter // nil when snapshots are off
	snapStore *snapshot.Store
	verifier  *verifier
	materials *materialWatch // checks every live material's stored copies

	replication *replication.Link                     // nil without Config.MultiRegion
	kicks       atomic.Pointer[keyservice.Replicator] // Replicator, for the fold

	// Background goroutines (background.go): tiles stops last, workers
	// before the ledger closes.
	tiles        *task
	workers      workers
	rootFollower rootFollower

	// alsoReady, on the front of a multi-region process, is the other
	// regions' readiness, which /readyz reports with its own.
	alsoReady atomic.Pointer[readyCheck]
	// httpStopped: Regions.Close stopped the front's listener already.
	httpStopped bool
	auditOnce   sync.Once
}

// The phases of an instance's life, as Ready reports them.
const (
	phaseOpening   = "opening the ledger and its stores"
	phaseRestoring = "restoring the projections"
	phaseReplaying = "replaying the ledger"
	phaseWriting   = "starting the ledger writer"
	phaseWiring    = "building the service"
	phaseServing   = "serving"
	phaseStopping  = "stopping"
	phaseStopped   = "stopped"
)

// Start builds and starts an instance on b, phase by phase: open the
// ledger and its stores; restore the projections from the newest snapshot
// that still matches the ledger (or start empty); fold and link-check the
// tail after it; start writing; build the service and its HTTP front; start
// the background work. The whole chain is then verified in the background,
// as `audit verify` does. If a phase fails, what the earlier ones started
// is stopped again. The backend stays the caller's to close.
func Start(ctx context.Context, b *backend.Backend, cfg Config) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, b: b, live: newLiveFeed(), hub: &auditapi.Hub{},
		verifier:     &verifier{diagnose: diagnoser(b, cfg.Ledger.Stream)},
		rootFollower: rootFollower{kick: make(chan struct{}, 1)}}
	phases := []struct {
		name string
		run  func(context.Context) error
	}{
		{phaseOpening, n.openLedger},
		{phaseOpening, n.openStores},
		{phaseRestoring, n.restoreState},
		{phaseReplaying, n.replayLedger},
		{phaseWriting, n.startWriting},
		{phaseWiring, n.buildService},
	}
	for _, p := range phases {
		n.setPhase(p.name)
		if err := p.run(ctx); err != nil {
			n.stop(ctx, false)
			return nil, err
		}
	}
	n.startBackground()
	n.setPhase(phaseServing)
	return n, nil
}

// startBackground starts the workers, in the order Close stops them
// backwards.
func (n *Node) startBackground() {
	n.startFeed()
	n.startVerifier()
	n.startMaterialCheck()
	n.startSnapshotter()
	n.startCheckpointer()
	n.startThrottleReporter()
	n.startRootFollower()
	n.startRegistration()
	n.startScheduler()
	n.startReplicator()
}

func (n *Node) setPhase(p string) {
	n.phase.Store(&p)
	if n.cfg.onPhase != nil {
		n.cfg.onPhase(n, p)
	}
}

func (n *Node) currentPhase() string {
	if p := n.phase.Load(); p != nil {
		return *p
	}
	return phaseOpening
}

// Live is the instance's live key state and compliance aggregates, which
// reports read instead of the ledger.
func (n *Node) Live() (*keystate.State, *compliance.Aggregates) { return n.State, n.Projections.Agg }

// Integrity is the background verifier's outcome (nil while it runs).
func (n *Node) Integrity() *compliance.Integrity { return n.verifier.Integrity() }

// ImageAt is the newest snapshot of the projections whose events all
// happened at or before t, signed by this instance's writer key (not
// revoked) and still matching the ledger; nil when there is none (time travel then folds from
// the first event).
func (n *Node) ImageAt(ctx context.Context, t time.Time) (*resume.Image, error) {
	own := n.cfg.Ledger.Writer
	if n.snapStore == nil || own == nil {
		return nil, nil
	}
	if _, gone := n.Ledger.RevokedWriter(own.ID()); gone {
		return nil, nil // a revoked key may be a thief's: fold from the first event
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
// background work and the ledger writer, and stores a snapshot and a
// checkpoint of everything written, so a clean shutdown leaves no event
// uncovered. The backend is the caller's to close.
func (n *Node) Close(ctx context.Context) error {
	n.setPhase(phaseStopping)
	n.closeAudit()
	var err error
	if !n.cfg.routed && !n.httpStopped { // a routed region's requests end with the front's listener
		err = n.http.Shutdown(ctx)
	}
	n.stopWorkers()
	if n.cfg.RootSeal != nil && !n.Service.Sealed() {
		if rerr := n.Service.RecordSealed(ctx, n.cfg.RootSeal.Mode()); rerr != nil {
			n.cfg.Logger.Warn("could not record sealing the root key", "error", rerr)
		}
	}
	n.stop(ctx, true)
	return err
}

// closeAudit ends the audit API's live subscriptions, once.
func (n *Node) closeAudit() { n.auditOnce.Do(n.audit.Close) }

// stopWorkers stops the background workers, newest first.
func (n *Node) stopWorkers() { n.workers.stopAll() }

// stop is the one place the instance's goroutines end, in order: the
// workers (which may still append), the ledger writer, then — with the
// final snapshot and checkpoint stored when final — the tile flusher. It
// undoes as much as the start-up phases did: a failed Start calls it too,
// without storing anything.
func (n *Node) stop(ctx context.Context, final bool) {
	n.stopWorkers()
	if n.writing {
		n.Ledger.Close()
		n.writing = false
		if final {
			n.storeFinal(ctx)
		}
	}
	n.tiles.stop()
	n.tiles = nil
	n.setPhase(phaseStopped)
}

// storeFinal stores a snapshot of the final state (the next start, and
// reports and time travel on the stopped data directory, fold nothing after
// it) and a checkpoint covering every event.
func (n *Node) storeFinal(ctx context.Context) {
	if n.snapshots != nil && !n.cfg.Snapshots.NotAtShutdown && n.snapshots.pending.Load() > 0 {
		if err := n.snapshots.take(ctx); err != nil {
			n.cfg.Logger.Warn("no snapshot at shutdown", "error", err)
		}
	}
	if n.Checkpointer != nil && n.cfg.CheckpointSigner != nil && n.Checkpointer.Tree().Size() > 0 {
		if _, err := n.Checkpointer.Final(ctx); err != nil { // kept for good: see checkpoint.Thinning
			n.cfg.Logger.Warn("no checkpoint at shutdown", "error", err)
		}
	}
}
