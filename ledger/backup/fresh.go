package backup

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/merkle"
)

// Rollback. A restore brings a deployment back to the backup's cut; if
// the deployment was newer, everything after the cut is undone: revoked
// grants and disabled keys come back. A genuine older backup verifies as
// well as the newest, so only what the operator knows of the newest state
// can tell them apart. Restore therefore takes that knowledge and refuses
// a cut older than it, and with none it refuses to guess: a rollback is a
// choice (AllowRollback), never an accident.
//
// The cut's time is its last event's time and its size the checkpoint's:
// both are covered by the signed checkpoint, not by the manifest's
// Created, which only the backup signing key vouches for.

// Freshness is what the operator knows of how new the restored state must
// be. At least one field must be set.
type Freshness struct {
	// NotBefore: the cut's last event must be at or after it.
	NotBefore time.Time
	// Witness is the newest checkpoint a witness accepted (its state file,
	// verified with the verifier key: witness.Load). The cut must hold at
	// least its events, with its root at its size (else the backup is of
	// another history: refused whatever AllowRollback says), and so must
	// the deletion journal (else deletions after its end come back).
	Witness *merkle.Checkpoint
	// AllowRollback restores a cut older than the references above, or
	// without any.
	AllowRollback bool
}

func (f Freshness) set() bool { return !f.NotBefore.IsZero() || f.Witness != nil || f.AllowRollback }

// ErrRollback is wrapped (with ErrRefused) by a refusal to roll back.
var ErrRollback = errors.New("restoring this backup would roll the deployment back")

// ErrNoFreshness means Open was given no Freshness at all.
var ErrNoFreshness = errors.New("name the newest state you know of (a time the cut must not be older than, or a witness state), " +
	"or allow a rollback explicitly")

// ErrFork is wrapped (with ErrRefused) when the backup or the journal is
// not the history the witness saw.
var ErrFork = errors.New("not the history the witness saw")

// witnessRoot is the root at the witness's size, when the stream passed it.
func witnessRoot(acc *roots, w *merkle.Checkpoint) (tlog.Hash, bool) {
	if w == nil || w.Size == 0 {
		return tlog.Hash{}, false
	}
	h, err := acc.rootAt(w.Size)
	return h, err == nil
}

func rollback(format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", ErrRefused, ErrRollback, fmt.Sprintf(format, args...))
}

// checkFresh refuses a backup (and journal) older than f says, and one
// that forks from the witness's tree.
func (b *Backup) checkFresh(f Freshness) error {
	cut, w := b.Checkpoint, f.Witness
	desc := fmt.Sprintf("the backup's cut (%d events, its last event #%d at %s)", cut.Size, b.Last.Index, b.Last.Time.UTC().Format(time.RFC3339))
	if w != nil {
		if w.Size <= cut.Size && w.Size > 0 && (!b.atWitnessOK || b.atWitness != w.Root) {
			return fmt.Errorf("%w: %w: %s does not have the witness's root at its size %d", ErrRefused, ErrFork, desc, w.Size)
		}
		if j := b.Journal; j != nil && w.Size <= j.Checkpoint.Size && w.Size > 0 && (!j.atWitnessOK || j.atWitness != w.Root) {
			return fmt.Errorf("%w: %w: the deletion journal does not have the witness's root at its size %d", ErrRefused, ErrFork, w.Size)
		}
	}
	if !f.set() {
		return fmt.Errorf("%w: %s: %w", ErrRefused, desc, ErrNoFreshness)
	}
	if f.AllowRollback {
		return nil
	}
	if !f.NotBefore.IsZero() && b.Last.Time.Before(f.NotBefore) {
		return rollback("%s is older than %s", desc, f.NotBefore.UTC().Format(time.RFC3339))
	}
	if w != nil && cut.Size < w.Size {
		return rollback("%s is older than the witness state (%d events)", desc, w.Size)
	}
	if j := b.Journal; j != nil {
		if w != nil && j.Checkpoint.Size < w.Size {
			return rollback("the deletion journal (%d events) is older than the witness state (%d events): deletions after its end would come back", j.Checkpoint.Size, w.Size)
		}
		if skipped := j.After - int64(j.Deletions); skipped > 0 {
			return rollback("the deletion journal holds %d events after the cut that are not restored (only deletions are): %s", skipped, OpCounts(j.Skipped))
		}
	}
	return nil
}
