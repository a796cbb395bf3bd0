package keyservice

import (
	"context"
	"errors"
	"slices"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/projections/keystate"
)

// RunDue carries out the work that has fallen due by the service's clock,
// now, if this instance runs the scheduler (see Scheduler): with a
// scheduler it is one Scheduler.Step, without one (a lone service) the work
// is done unfenced.
func (s *Service) RunDue(ctx context.Context) error {
	s.retryDestroy(ctx) // any instance may: destroying recorded deletions is idempotent, and needs no root key
	if s.sched != nil {
		return s.sched.Step(ctx)
	}
	return s.runDue(ctx, func(context.Context) (fence, error) { return unfenced, nil })
}

// runDue carries out the due work, each as the service event CloudTrail
// records for it: keys whose deletion date has passed are deleted and their
// material destroyed (DeleteKey); keys due for automatic rotation get new
// material (RotateKey); imported material past its ValidTo is destroyed
// (DeleteExpiredKeyMaterial); a root key rotation's material is rewrapped
// and its old version retired (RootRotation). Only when there is work is
// the fence asked for (the scheduler records its lease then, so an idle
// scheduler writes nothing); each event is appended only if, at its place
// in the chain, the work is still due and the fence still holds.
func (s *Service) runDue(ctx context.Context, fenced func(context.Context) (fence, error)) error {
	if s.Sealed() {
		return nil // rotation needs the root key; the work waits until unsealed
	}
	now := s.clock.Now()
	dels, rots, exps := s.state.DueForDeletion(now), s.state.DueForRotation(now), s.state.DueForExpiry(now)
	rewrap := s.rotation != nil && s.rotation.hasWork()
	if len(dels)+len(rots)+len(exps) == 0 && !rewrap {
		return nil
	}
	f, err := fenced(ctx)
	if err != nil {
		return nil // not this instance's to do now; the next step asks again
	}
	for _, k := range dels {
		if err := s.deleteKey(ctx, k.ID, f); err != nil {
			return err
		}
	}
	for _, k := range rots {
		if err := s.rotate(ctx, k.ID, f); err != nil {
			return err
		}
	}
	for _, k := range exps {
		if err := s.expire(ctx, k.ID, f); err != nil {
			return err
		}
	}
	if rewrap {
		return s.rotation.step(ctx, f)
	}
	return nil
}

// errNotDue refuses a scheduled event whose work is no longer due at its
// place in the chain (done by another instance, or changed).
var errNotDue = errors.New("keyservice: no longer due")

// appendDue appends a scheduled event if, at its place in the chain, f
// holds and due says the work is still to be done. ok is false (with a nil
// error) when the ledger refused it for that reason or another instance
// appended first: the work is someone else's, or the next step's.
func (s *Service) appendDue(ctx context.Context, ev *event.Event, f fence, due func() bool) (ok bool, err error) {
	_, err = s.appendIf(ctx, ev, func() error {
		if err := f(); err != nil {
			return err
		}
		if !due() {
			return errNotDue
		}
		return nil
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errNotDue), errors.Is(err, errFenced), errors.Is(err, ledger.ErrConflict), errors.Is(err, errBusy):
		s.log.Info("scheduled work not recorded: no longer this instance's to do", "op", ev.Operation, "key", ev.KeyID,
			"reason", err.Error())
		return false, nil
	}
	return false, err
}

// appendIf appends ev if cond holds at its place: as a change (changing),
// fenced on the partitions cond and the event read, so cond and the append
// are one step. cond reads the scheduler's lease record (the service
// partition) and the key's state (the key's partition, which the event
// names). A change that lost its race runs again; cond then sees what won.
func (s *Service) appendIf(ctx context.Context, ev *event.Event, cond func() error) (event.Record, error) {
	if changeOf(ctx) == nil {
		return changing(ctx, s, func(ctx context.Context) (event.Record, error) { return s.appendIf(ctx, ev, cond) })
	}
	touch(ctx, servicePartition)
	if err := cond(); err != nil {
		return event.Record{}, err
	}
	return s.recordRec(ctx, ev)
}

// deleteKey records a due deletion, fenced on the key and on the
// scheduler's lease record: it happens exactly once even if two instances'
// schedulers find it due at once (the second loses the race and, validating
// again, finds the key deleted).
func (s *Service) deleteKey(ctx context.Context, id string, f fence) error {
	_, err := changing(ctx, s, func(ctx context.Context) (struct{}, error) { return struct{}{}, s.deleteKeyOnce(ctx, id, f) })
	return err
}

func (s *Service) deleteKeyOnce(ctx context.Context, id string, f fence) error {
	touch(ctx, keyPartition(id))
	now := s.clock.Now()
	due := func() bool {
		k, ok := s.state.Key(id)
		return ok && k.State == keystate.PendingDeletion && !k.DeletionDate.After(now)
	}
	k, _ := s.state.Key(id)
	if !due() || f() != nil {
		return nil // changed while we waited for the lock, or no longer ours
	}
	var ids []string
	for _, m := range k.Materials {
		ids = append(ids, m.ID)
	}
	for _, t := range k.ImportTokens { // wrapping keys of import tokens go too
		ids = append(ids, t.WrappingKey.ID)
	}
	slices.Sort(ids)
	ev := &event.Event{Time: now, Operation: "DeleteKey", Account: k.Account, Region: k.Region, KeyID: k.ID,
		Body: &event.KeyDeleted{DestroyedMaterials: ids}}
	// Destroy first, then record: once DeleteKey is in the ledger no file
	// can hold the material, whenever a crash comes. A crash (or a refused
	// append) in between leaves a key past its deletion date without
	// material, which nothing may use or cancel; the next run records it.
	// An instance that lost the scheduler lease meanwhile may still
	// destroy: the key is past its date, so that changes nothing; only
	// the record is fenced.
	s.forget(ids...)
	if err := s.destroy(ctx, ids); err != nil {
		return err
	}
	_, err := s.appendDue(ctx, ev, f, due)
	return err
}

func (s *Service) destroy(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if err := s.materials.Destroy(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// Sweep finishes destroying every material the ledger says is destroyed, in
// case a crash came between the event and the destruction, and reclaims the
// per-material keys of materials the ledger never committed to (a crash
// between storing and recording). Destroying is idempotent; run it at
// start-up, before serving.
func (s *Service) Sweep(ctx context.Context) error {
	if err := s.destroy(ctx, s.state.Destroyed()); err != nil {
		return err
	}
	r, ok := s.materials.(reclaimer)
	if !ok {
		return nil
	}
	live := s.liveMaterials()
	ids, err := r.Reclaim(ctx, func(id string) bool { return live[id] })
	if len(ids) > 0 {
		s.log.Info("destroyed key material the ledger never committed to (left by a crash)", "materials", ids)
	}
	if errors.Is(err, material.ErrTooManyOrphans) { // keep them; serving is still safe
		s.log.Error("key material unknown to the ledger kept; check the ledger for lost events", "error", err)
		return nil
	}
	// Damaged key slots of live materials are kept here and repaired (or
	// reported) by CheckMaterials.
	return err
}

// reclaimer is a material store that can destroy what the ledger does not
// reference (material.Store).
type reclaimer interface {
	Reclaim(ctx context.Context, live func(id string) bool) ([]string, error)
}

// liveMaterials is every material a key still refers to: its materials and
// its import tokens' wrapping keys.
func (s *Service) liveMaterials() map[string]bool {
	live := map[string]bool{}
	for _, k := range s.state.Snapshot().Keys {
		for _, m := range k.Materials {
			live[m.ID] = true
		}
		for _, t := range k.ImportTokens {
			live[t.WrappingKey.ID] = true
		}
	}
	return live
}
