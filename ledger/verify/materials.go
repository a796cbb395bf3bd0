package verify

import (
	"context"
	"fmt"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
)

// MaterialFold derives, from the ledger, the materials that must be
// readable now with the commitments the ledger accepts for each, and the
// key each belongs to (keystate.State).
type MaterialFold interface {
	Apply(recs []event.Record)
	CheckableMaterials(now time.Time) (live map[string][]string, owner map[string]string)
}

// MaterialVerifier reads every live material from both stored copies
// without repairing anything (a read-only material.Store).
type MaterialVerifier interface {
	Verify(ctx context.Context, live map[string][]string) (material.Checked, error)
}

// Materials is what VerifyMaterials found.
type Materials struct {
	material.Checked
	Owner map[string]string // material id → key id
}

// Materials folds the ledger and reads every material it holds live from
// both stored copies against its commitment: Unreadable names those no
// copy opens (key material lost here: restore it from a backup), Repaired
// those with one bad copy (serve repairs it at its next start). It writes
// nothing. It reads the ledger once more, and four stored parts per live
// material.
func VerifyMaterials(ctx context.Context, l *ledger.Ledger, fold MaterialFold, store MaterialVerifier, now time.Time) (Materials, error) {
	if _, err := l.Replay(ctx, chain.Head{}, func(r event.Record) error {
		fold.Apply([]event.Record{r})
		return nil
	}); err != nil {
		return Materials{}, fmt.Errorf("reading the ledger: %w", err)
	}
	live, owner := fold.CheckableMaterials(now)
	res, err := store.Verify(ctx, live)
	return Materials{Checked: res, Owner: owner}, err
}
