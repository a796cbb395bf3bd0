package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/merkle"
)

// DefaultCheckpointInterval is how often a signed checkpoint is stored when
// the ledger grew: it bounds the events no checkpoint covers yet, which is
// what a truncation could remove unnoticed by start-up and audit verify.
const DefaultCheckpointInterval = time.Second

// newestCheckpoint returns the newest stored checkpoint signed with the
// instance's checkpoint key, which the ledger must extend; nil when there is
// none (a new ledger, or no checkpoint key configured). Newer checkpoints
// that do not verify are another instance's (each signs with its own key)
// or forged: not trusted, and left to audit witness to judge.
func newestCheckpoint(ctx context.Context, cps *checkpoint.Store, cfg Config) (*merkle.Checkpoint, error) {
	if cfg.CheckpointVerifier == "" {
		return nil, nil
	}
	cp, skipped, err := cps.Newest(ctx, cfg.CheckpointVerifier)
	if skipped > 0 {
		cfg.Logger.Info("newer stored checkpoints do not verify with this instance's checkpoint key (another instance's, or forged); "+
			"the ledger is checked against the newest that does", "count", skipped)
	}
	if errors.Is(err, checkpoint.ErrNone) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: reading the newest checkpoint: %w", err)
	}
	return &cp, nil
}
