package backup

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
)

// Restoring one material. A key whose material no stored copy opens any
// more gets it back from a backup without a full restore: the live
// ledger's commitment (the SHA-256 of the root-wrapped bytes) says which
// bytes are right, so nothing else of the backup needs trusting — a forged
// or stale backup cannot offer bytes that match.

// KeyFold derives, from the live ledger, which materials a key refers to
// and the commitments the ledger accepts for each (keystate.State).
type KeyFold interface {
	Apply(recs []event.Record)
	KeyMaterials(keyID string) (map[string][]string, bool)
}

// KeyCommitments folds the live ledger and returns keyID's materials with
// their commitments (newest first).
func KeyCommitments(ctx context.Context, l *ledger.Ledger, fold KeyFold, keyID string) (map[string][]string, error) {
	if _, err := l.Replay(ctx, chain.Head{}, func(r event.Record) error {
		fold.Apply([]event.Record{r})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("backup: reading the ledger: %w", err)
	}
	mats, ok := fold.KeyMaterials(keyID)
	if !ok {
		return nil, fmt.Errorf("backup: the ledger holds no key %s (or it was deleted)", keyID)
	}
	return mats, nil
}

// MaterialRestorer puts back one material (material.Store).
type MaterialRestorer interface {
	Restore(ctx context.Context, id string, wrapped []byte, commitments ...string) error
}

// MaterialOutcome is what RestoreMaterials did with one material.
type MaterialOutcome struct {
	ID     string
	Result string // "restored", "readable" (nothing to do), or why not
	OK     bool   // restored or readable
}

// RestoreMaterials puts back each material of want (id → the ledger's
// commitments) from the backup in dir whose bytes match a commitment. A
// material the backup lacks or holds other bytes for is reported, not
// restored; the error is for a backup that cannot be read.
func RestoreMaterials(ctx context.Context, dir string, store MaterialRestorer, want map[string][]string) ([]MaterialOutcome, error) {
	f, err := os.Open(filepath.Join(dir, MaterialsFile))
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	found := map[string]bool{}
	var out []MaterialOutcome
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var line materialLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("backup: %s: %w", MaterialsFile, err)
		}
		commitments, ok := want[line.ID]
		if !ok || found[line.ID] {
			continue
		}
		found[line.ID] = true
		o := MaterialOutcome{ID: line.ID}
		switch err := store.Restore(ctx, line.ID, line.Wrapped, commitments...); {
		case err == nil:
			o.Result, o.OK = "restored", true
		case errors.Is(err, material.ErrReadable):
			o.Result, o.OK = "readable: nothing to restore", true
		case errors.Is(err, material.ErrNotCommitted):
			o.Result = "the backup holds other bytes than the ledger commits to (a backup from before a root key rotation, or forged): not restored"
		default:
			return out, fmt.Errorf("backup: restoring material %s: %w", line.ID, err)
		}
		out = append(out, o)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("backup: %s: %w", MaterialsFile, err)
	}
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range want {
			if !yield(id) {
				return
			}
		}
	}) {
		if !found[id] {
			out = append(out, MaterialOutcome{ID: id, Result: "not in the backup (created after it was taken): not restored"})
		}
	}
	return out, nil
}
