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
	"time"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/gateway/awsjson"
	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/gateway/principals"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
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
	Logger            *slog.Logger
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now().UTC() }

// Node is a running instance.
type Node struct {
	Ledger    *ledger.Ledger
	Materials *material.Store
	State     *keystate.State
	Service   *keyservice.Service
	HTTP      *awsjson.Server

	stopScheduler context.CancelFunc
	schedulerDone chan struct{}
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
	lcfg := cfg.Ledger
	lcfg.OnCommit = state.Apply
	lcfg.Logger = cfg.Logger
	l, err := b.OpenLedger(ctx, lcfg)
	if err != nil {
		return nil, err
	}
	mats, err := b.OpenMaterials(ctx, cfg.Materials)
	if err != nil {
		return nil, err
	}
	started := time.Now()
	head, err := l.Replay(ctx, chain.Head{}, func(r ledger.Record) error {
		state.Apply([]ledger.Record{r})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("node: replaying the ledger: %w", err)
	}
	cfg.Logger.Info("ledger replayed", "events", head.Count, "head", head.Hash.String(), "took", time.Since(started).Round(time.Millisecond))
	l.Start(head)

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
	sctx, cancel := context.WithCancel(context.Background())
	http := awsjson.New(svc, awsjson.Options{Principals: cfg.Principals, Region: cfg.Region, Now: cfg.AuthClock, Logger: cfg.Logger})
	n := &Node{Ledger: l, Materials: mats, State: state, Service: svc, HTTP: http,
		stopScheduler: cancel, schedulerDone: make(chan struct{})}
	go func() {
		defer close(n.schedulerDone)
		svc.RunScheduler(sctx, cfg.SchedulerInterval)
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
func (n *Node) Serve(ln net.Listener) error { return n.HTTP.Serve(ln) }

// Close stops taking requests, lets in-flight ones finish, then stops the
// scheduler and the ledger writer. The backend is the caller's to close.
func (n *Node) Close(ctx context.Context) error {
	err := n.HTTP.Shutdown(ctx)
	n.stopScheduler()
	<-n.schedulerDone
	n.Ledger.Close()
	return err
}
