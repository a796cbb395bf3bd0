package keyservice

import (
	"context"
	"slices"
	"time"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
)

// RunDue carries out the work that has fallen due by the service's clock,
// each as the service event CloudTrail records for it: keys whose deletion
// date has passed are deleted and their material destroyed (DeleteKey);
// keys due for automatic rotation get new material (RotateKey); imported
// material past its ValidTo is destroyed (DeleteExpiredKeyMaterial).
func (s *Service) RunDue(ctx context.Context) error {
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
	if _, err := s.ledger.Append(ctx, ev); err != nil {
		return err
	}
	s.forget(ids...)
	return s.destroy(ctx, ids)
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
// case a crash came between the event and the destruction. Destroying is
// idempotent; run it at start-up.
func (s *Service) Sweep(ctx context.Context) error {
	return s.destroy(ctx, s.state.Destroyed())
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
