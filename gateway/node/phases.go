package node

import (
	"context"
	"fmt"
	"time"

	"github.com/keyledger/keyledger/gateway/auditapi"
	"github.com/keyledger/keyledger/gateway/awsjson"
	"github.com/keyledger/keyledger/gateway/console"
	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/gateway/rootapi"
	"github.com/keyledger/keyledger/gateway/seedapi"
	"github.com/keyledger/keyledger/gateway/writerapi"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/event"
)

// The start-up phases, in the order Start runs them. Each reads what the
// earlier ones left on the Node and leaves its own part there.

// openLedger opens the ledger stream and its Merkle tiles, and checks the
// ledger's base: after a removed segment the tree continues from the
// base's frontier (its tiles are kept) and must have the base's root there.
func (n *Node) openLedger(ctx context.Context) error {
	tiles, err := n.b.OpenTiles(ctx, n.cfg.Ledger.Stream)
	if err != nil {
		return err
	}
	lcfg := n.cfg.Ledger
	lcfg.OnCommit = n.fold
	lcfg.Logger = n.cfg.Logger
	l, err := n.b.OpenLedger(ctx, lcfg)
	if err != nil {
		return err
	}
	start, err := l.TiledTree(tiles, n.cfg.TileCache)
	if err == nil {
		err = l.CheckBaseTree(start.Root)
	}
	if err != nil {
		return fmt.Errorf("node: refusing to start: the ledger's base: %w", err)
	}
	n.Ledger = l
	n.trees = trees{store: tiles, cache: n.cfg.TileCache, l: l}
	return nil
}

// openStores opens the material store, the snapshots (unless off) and the
// checkpoints, and reads the newest checkpoint before the replay: one
// stored meanwhile (by another instance) may cover events the replay does
// not reach.
func (n *Node) openStores(ctx context.Context) error {
	var err error
	if n.Materials, err = n.b.OpenMaterials(ctx, n.cfg.Materials); err != nil {
		return err
	}
	if !n.cfg.Snapshots.Off {
		if n.snapStore, err = n.b.OpenSnapshots(ctx, n.cfg.Ledger.Stream); err != nil {
			return err
		}
	}
	if n.checkpoints, err = n.b.OpenCheckpoints(ctx, n.cfg.Ledger.Stream); err != nil {
		return err
	}
	n.newest, err = newestCheckpoint(ctx, n.checkpoints, n.cfg)
	return err
}

// restoreState restores the projections and the Merkle tree from the
// newest snapshot that still matches the ledger, or starts them empty, and
// starts the tile flusher, which stores tiles as the replay completes them.
func (n *Node) restoreState(ctx context.Context) error {
	onTree := func(err error) { n.cfg.Logger.Error("merkle tree append failed", "error", err) }
	r := restore(ctx, n.Ledger, n.snapStore, n.cfg, n.trees, n.newest, onTree)
	if r.resume == nil && n.Ledger.FirstIndex() > 0 {
		// Key state lives in events; those before the base were removed.
		return fmt.Errorf("node: refusing to start: the live ledger starts at event %d after a removed segment, "+
			"and no snapshot at or after it restores the key state (snapshots: %v)", n.Ledger.FirstIndex(), !n.cfg.Snapshots.Off)
	}
	n.restored, n.Projections, n.State, n.tree = r, r.proj, r.proj.State, r.tree
	// A tile lost or garbled in the bucket after start-up is rebuilt from
	// the events under it when a proof needs it (checked, then stored).
	n.tree.RepairFrom(n.Ledger.LeavesFrom)
	n.startTiles()
	if n.snapStore != nil && n.cfg.Ledger.Writer != nil {
		n.snapshots = &snapshotter{cfg: n.cfg.Snapshots, proj: n.Projections, l: n.Ledger, store: n.snapStore, tree: n.tree,
			key: n.cfg.Ledger.Writer, log: n.cfg.Logger, kick: make(chan struct{}, 1)}
		if r.rebuilt {
			n.snapshots.soon()
		}
	}
	return nil
}

// replayLedger folds and link-checks every event after the restored
// state, then checks that the ledger extends the newest checkpoint and that
// the writers it trusts are vouched for.
func (n *Node) replayLedger(ctx context.Context) error {
	began := time.Now()
	head, err := replayTail(ctx, n.Ledger, n.restored, n.fold, n.cfg.Logger)
	if err != nil {
		return fmt.Errorf("node: replaying the ledger: %w", err)
	}
	tail := head.Count
	if n.restored.resume != nil {
		tail -= n.restored.resume.Head.Count
	}
	n.cfg.Logger.Info("ledger replayed", "events", head.Count, "tail_folded", tail, "from_snapshot", n.restored.resume != nil,
		"head", head.Hash.String(), "took", time.Since(began).Round(time.Millisecond))
	if n.newest != nil {
		if err := checkpoint.CheckExtends(*n.newest, n.tree.Size(), n.tree.Root); err != nil {
			return fmt.Errorf("node: refusing to start: %w", err)
		}
	}
	// After removed segments every fold from the base (the background
	// verifier, audit) trusts the writers it names; the fold from this
	// instance's own snapshot vouches for them, not the base bucket.
	// It also knows where each writer was revoked: a base may name a
	// writer revoked after it, never one revoked before.
	if err := n.Ledger.CheckBaseRevoked(n.Ledger.Writers(), n.Ledger.Revoked(), "the fold from this instance's snapshot"); err != nil {
		return fmt.Errorf("node: refusing to start: %w", err)
	}
	n.head = head
	return nil
}

// startWriting starts the ledger writer after the replayed head, makes
// sure the ledger accepts this instance's writer key, and records a changed
// principals configuration. An instance whose key is not registered yet
// starts all the same (see registerWriter); it records its principals once
// registered (startRegistration).
func (n *Node) startWriting(ctx context.Context) error {
	n.Ledger.Start(n.head)
	n.writing = true
	registered, err := registerWriter(ctx, n.Ledger, n.cfg)
	if err != nil || !registered {
		return err
	}
	return recordPrincipals(ctx, n.Ledger, n.State, n.cfg)
}

// buildService builds the key service (finishing any material destruction
// a crash interrupted) and its scheduler, its HTTP front with the root key
// and audit endpoints, and the checkpointer.
func (n *Node) buildService(ctx context.Context) error {
	var appender keyservice.Ledger = n.Ledger
	if n.cfg.Metrics != nil {
		appender = timedLedger{n.Ledger, n.cfg.Metrics}
	}
	if n.cfg.wrapLedger != nil {
		appender = n.cfg.wrapLedger(appender)
	}
	svc := keyservice.New(keyservice.Config{
		Region: n.cfg.Region, Clock: n.cfg.Clock, Ledger: appender, State: n.State,
		Materials: n.Materials, RootKey: n.cfg.RootKey, Principals: n.cfg.Principals, Logger: n.cfg.Logger,
		OperatorAccount: n.cfg.OperatorAccount, Writers: n.Ledger, WriterID: n.cfg.Ledger.Writer.ID(),
	})
	if err := svc.Sweep(ctx); err != nil {
		return fmt.Errorf("node: finishing material destruction: %w", err)
	}
	n.materials = &materialWatch{svc: svc, log: n.cfg.Logger}
	n.materials.check(ctx) // before serving: repair, or say which keys are lost
	n.Service = svc
	if err := n.openReplicator(ctx, svc); err != nil {
		return err
	}
	leases, err := n.b.OpenLeases(ctx, n.cfg.Ledger.Stream, n.cfg.SchedulerLeaseTTL)
	if err != nil {
		return err
	}
	var sl keyservice.Leases = schedulerLeases{leases}
	if n.cfg.wrapLeases != nil {
		sl = n.cfg.wrapLeases(sl)
	}
	n.Scheduler = svc.NewScheduler(sl, n.cfg.Instance)
	n.feed = n.b.Feed(n.cfg.Ledger.Stream)
	n.http = awsjson.New(svc, awsjson.Options{Principals: n.cfg.Principals, Region: n.cfg.Region, Now: n.cfg.AuthClock,
		Logger: n.cfg.Logger, Limits: n.cfg.HTTP, Ready: n.readyAll, Limiter: n.cfg.Throttle, Observer: observer(n.cfg.Metrics),
		Sealed: svc.Sealed})
	if n.cfg.RootSeal != nil {
		// Instances that share a deployment (an external NATS: no DataDir)
		// share the sealed file too; an embedded instance is alone, and its
		// seal file stays only where the operator keeps it.
		var seals keyservice.SealStore
		if n.cfg.DataDir == "" {
			store, err := n.b.OpenSealStore(ctx, n.cfg.Ledger.Stream)
			if err != nil {
				return err
			}
			seals = store
		}
		n.Rotation = svc.NewRootRotation(n.cfg.RootSeal, n.Materials, seals)
		var unseal *keyservice.Unseal
		if n.cfg.RootSeal.Mode() == "shamir" {
			unseal = svc.NewUnseal(n.cfg.RootSeal, n.Rotation.Resume)
		}
		rootapi.Register(n.http, unseal, n.Rotation)
	}
	seedapi.Register(n.http, svc, n.cfg.SeedDev)
	writerapi.Register(n.http, svc)
	n.Checkpointer = checkpoint.NewCheckpointer(checkpoint.Config{Tree: n.tree, Store: n.checkpoints,
		Signer: n.cfg.CheckpointSigner, Verifier: n.cfg.CheckpointVerifier, Origin: n.cfg.CheckpointOrigin, Writers: n.Ledger.Writers, Revoked: n.Ledger.Revoked})
	n.audit = auditapi.Register(n.http, auditapi.Config{Service: svc, Checkpoints: n.Checkpointer, Chain: n.Ledger,
		History: n.Ledger, Hub: n.hub, Clock: n.cfg.Clock, Region: n.cfg.Region, Reports: n, Past: n})
	console.Register(n.http, console.Options{Region: n.cfg.Region}) // at /console/, a client of the APIs above
	if n.cfg.Metrics != nil {
		n.instrument(n.cfg.Metrics)
	}
	return nil
}

// fold is the ledger's commit hook and the replay's: every event, in chain
// order, reaches the projections, the snapshotter's count and the live
// feed. It runs on the replaying goroutine, then on the ledger writer's.
func (n *Node) fold(recs []event.Record) {
	if n.cfg.Metrics != nil {
		n.cfg.Metrics.Committed(len(recs))
	}
	n.Projections.Apply(recs)
	n.kickReplicator(recs)
	n.snapshots.folded(len(recs))
	n.live.offer(recs)
	n.rootFollower.noticeRoot(recs)
}
