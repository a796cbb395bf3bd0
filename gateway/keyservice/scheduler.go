package keyservice

import (
	"context"
	"time"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
)

// RunDue carries out the work that has fallen due by the service's clock:
// every key whose deletion date has passed is deleted (a DeleteKey service
// event, as CloudTrail records it) and its key material destroyed.
func (s *Service) RunDue(ctx context.Context) error {
	for _, k := range s.state.DueForDeletion(s.clock.Now()) {
		if err := s.deleteKey(ctx, k.ID); err != nil {
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
	ids := make([]string, len(k.Materials))
	for i, m := range k.Materials {
		ids[i] = m.ID
	}
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

// Sweep finishes destroying the material of keys the ledger says are
// deleted, in case a crash came between the DeleteKey event and the
// destruction. Destroying is idempotent; run it at start-up.
func (s *Service) Sweep(ctx context.Context) error {
	for _, d := range s.state.Deleted() {
		if err := s.destroy(ctx, d.Materials); err != nil {
			return err
		}
	}
	return nil
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
