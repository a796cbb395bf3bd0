package keyservice

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/lease"
)

// Leases hands out the scheduler's lease (a *lease.Bucket, through
// gateway/node).
type Leases interface {
	Acquire(ctx context.Context, holder string) (HeldLease, error) // lease.ErrHeld while another holds it
	TTL() time.Duration
}

// HeldLease is an acquired lease (a *lease.Lease).
type HeldLease interface {
	Token() uint64
	Remaining() time.Duration
	Renew(ctx context.Context) error // lease.ErrLost once expired or taken
	Release(ctx context.Context) error
}

// Scheduler turns due work into events on exactly one instance at a time:
// the one holding the scheduler lease. Taking the lease is not enough to
// act: the holder first records SchedulerLeaseTaken in the ledger,
// superseding the newest one there, and appends every piece of due work
// as a change (appendIf) on two conditions checked against the state the
// change is fenced on — its own SchedulerLeaseTaken is still the newest
// (the fence, in the service partition), and the work is still due (the
// key's partition). So an instance that lost the lease (killed,
// paused past the lease's TTL, cut off) cannot record anything once the
// next holder recorded its own, and due work is recorded once whoever
// races for it, across restarts and takeovers. The holder renews the lease
// every TTL/3 and acts only while it has more than TTL/2 left; it releases
// the lease when it stops, so another instance takes over at once.
//
// The lease is recorded in the ledger only when there is due work, so an
// idle scheduler writes nothing. A Scheduler is safe for concurrent use;
// one step runs at a time.
type Scheduler struct {
	svc    *Service
	leases Leases // nil: no lease; this instance is alone
	holder string
	log    *slog.Logger

	mu    sync.Mutex
	held  HeldLease // nil while not holding
	fence string    // hash of this holder's SchedulerLeaseTaken; "" until recorded
}

// NewScheduler makes s's scheduler. holder names this instance in the
// lease and in the ledger; nil leases runs every step unfenced (a single
// instance).
func (s *Service) NewScheduler(leases Leases, holder string) *Scheduler {
	sc := &Scheduler{svc: s, leases: leases, holder: holder, log: s.log}
	s.sched = sc
	return sc
}

// fence is checked at the place of each scheduled event; nil means go on.
type fence func() error

func unfenced() error { return nil }

// errFenced refuses a scheduled event of an instance whose scheduler lease
// is no longer the newest in the ledger.
var errFenced = errors.New("keyservice: the scheduler lease passed to another instance")

// Run takes steps every interval until ctx ends, then releases the lease.
func (sc *Scheduler) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	defer sc.release()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := sc.Step(ctx); err != nil && ctx.Err() == nil {
				sc.log.Error("scheduled work failed; will retry", "error", err)
			}
		}
	}
}

// Step holds on to the lease (taking it if free, renewing it when due) and,
// while this instance holds it, carries out the due work.
func (sc *Scheduler) Step(ctx context.Context) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if !sc.svc.mayWrite() {
		// The lease is a KV entry, not a ledger write: held by an instance
		// that can record nothing (its key revoked, or not registered),
		// it would stop every due deletion and rotation of the deployment.
		sc.releaseLocked()
		return nil
	}
	if !sc.hold(ctx) {
		return nil
	}
	return sc.svc.runDue(ctx, sc.fenced)
}

// Holding reports whether this instance holds the scheduler lease.
func (sc *Scheduler) Holding() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.leases == nil || (sc.held != nil && sc.held.Remaining() > 0)
}

// hold keeps the lease: it takes it when free and renews it once a third of
// its TTL passed. It reports whether this instance may act now: it holds
// the lease with more than half its TTL left.
func (sc *Scheduler) hold(ctx context.Context) bool {
	if sc.leases == nil {
		return true
	}
	ttl := sc.leases.TTL()
	if sc.held == nil {
		l, err := sc.leases.Acquire(ctx, sc.holder)
		if errors.Is(err, lease.ErrHeld) {
			return false
		}
		if err != nil {
			sc.log.Warn("cannot take the scheduler lease", "error", err)
			return false
		}
		sc.held, sc.fence = l, ""
		sc.log.Info("scheduler lease taken", "holder", sc.holder, "token", l.Token())
	} else if sc.held.Remaining() < ttl-ttl/3 {
		if err := sc.held.Renew(ctx); errors.Is(err, lease.ErrLost) {
			sc.log.Warn("scheduler lease lost; another instance runs the scheduler", "holder", sc.holder, "token", sc.held.Token())
			sc.held, sc.fence = nil, ""
			return false
		} else if err != nil {
			sc.log.Warn("cannot renew the scheduler lease; will retry", "error", err)
		}
	}
	return sc.held.Remaining() >= ttl/2 // too close to expiry to start anything
}

// fenced returns the fence due work is appended under, first recording the
// lease in the ledger if this holder's record is not the newest there
// (the first work after taking the lease, or another instance's record
// came later).
func (sc *Scheduler) fenced(ctx context.Context) (fence, error) {
	if sc.leases == nil {
		return unfenced, nil
	}
	if sc.fence == "" || sc.svc.state.Scheduler().Event != sc.fence {
		if err := sc.record(ctx); err != nil {
			return nil, err
		}
	}
	fence := sc.fence
	return func() error {
		if sc.svc.state.Scheduler().Event != fence {
			return errFenced
		}
		return nil
	}, nil
}

// record appends SchedulerLeaseTaken for the held lease, superseding the
// newest one in the ledger (if that is still the newest at its place).
func (sc *Scheduler) record(ctx context.Context) error {
	prev := sc.svc.state.Scheduler().Event
	ev := &event.Event{Time: sc.svc.clock.Now(), Operation: "TakeSchedulerLease", Region: sc.svc.region,
		Body: &event.SchedulerLeaseTaken{Holder: sc.holder, Token: sc.held.Token(), Supersedes: prev}}
	rec, err := sc.svc.appendIf(ctx, ev, func() error {
		if sc.svc.state.Scheduler().Event != prev {
			return errFenced
		}
		return nil
	})
	if err != nil {
		sc.log.Info("scheduler lease not recorded yet; will retry", "reason", err.Error())
		return err
	}
	sc.fence = rec.Hash.String()
	sc.log.Info("scheduler lease recorded in the ledger", "holder", sc.holder, "token", sc.held.Token())
	return nil
}

// release gives the lease up (on shutdown), so another instance takes the
// scheduler over at once.
func (sc *Scheduler) release() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.releaseLocked()
}

func (sc *Scheduler) releaseLocked() {
	if sc.held == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sc.held.Release(ctx); err != nil {
		sc.log.Warn("scheduler lease not released; another instance takes over when it expires", "error", err)
	}
	sc.held, sc.fence = nil, ""
}
