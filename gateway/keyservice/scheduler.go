package keyservice

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/projections/keystate"
)

// RunDue carries out the work that has fallen due by the service's clock,
// each as the service event CloudTrail records for it: keys whose deletion
// date has passed are deleted and their material destroyed (DeleteKey);
// keys due for automatic rotation get new material (RotateKey); imported
// material past its ValidTo is destroyed (DeleteExpiredKeyMaterial).
func (s *Service) RunDue(ctx context.Context) error {
	if s.Sealed() {
		return nil // rotation needs the root key; the work waits until unsealed
	}
	now := s.clock.Now()
	for _, k := range s.state.DueForDeletion(now) {
		if err := s.deleteKey(ctx, k.ID); err != nil {
			return err
		}
	}
	for _, k := range s.state.DueForRotation(now) {
		if err := s.rotate(ctx, k.ID); err != nil {
			return err
		}
	}
	for _, k := range s.state.DueForExpiry(now) {
		if err := s.expire(ctx, k.ID); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) deleteKey(ctx context.Context, id string) error {
	defer s.exclusive()()
	now := s.clock.Now()
	k, ok := s.state.Key(id)
	if !ok || k.State != keystate.PendingDeletion || k.DeletionDate.After(now) {
		return nil // changed while we waited for the lock
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
	s.forget(ids...)
	if err := s.destroy(ctx, ids); err != nil {
		return err
	}
	_, err := s.ledger.Append(ctx, ev)
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

// RunScheduler calls RunDue every interval until ctx ends.
func (s *Service) RunScheduler(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.RunDue(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("scheduled work failed; will retry", "error", err)
			}
		}
	}
}
