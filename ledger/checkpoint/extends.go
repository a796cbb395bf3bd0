package checkpoint

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/merkle"
)

// MismatchError means the ledger does not extend its newest signed
// checkpoint: it was truncated (fewer events than the checkpoint covers)
// or rewritten (the same size, another root).
type MismatchError struct {
	Checkpoint merkle.Checkpoint
	Events     int64     // valid events in the ledger
	Root       tlog.Hash // the ledger's root at the checkpoint's size, if it has that many
}

// Truncated reports whether the ledger is shorter than the checkpoint.
func (e *MismatchError) Truncated() bool { return e.Events < e.Checkpoint.Size }

func (e *MismatchError) Error() string {
	cp := e.Checkpoint
	if e.Truncated() {
		return fmt.Sprintf("ledger truncated: the newest signed checkpoint (%s) covers %d events but the ledger holds %d: "+
			"events from index %d to %d are gone", cp.Origin, cp.Size, e.Events, e.Events, cp.Size-1)
	}
	return fmt.Sprintf("ledger rewritten: its first %d events do not rebuild the root of the newest signed checkpoint (%s): "+
		"signed %s, ledger %s", cp.Size, cp.Origin, cp.Root, e.Root)
}

// CheckExtends returns a *MismatchError unless a ledger of events valid
// events, whose Merkle root at a size is rootAt(size), extends cp.
func CheckExtends(cp merkle.Checkpoint, events int64, rootAt func(size int64) (tlog.Hash, error)) error {
	if events < cp.Size {
		return &MismatchError{Checkpoint: cp, Events: events}
	}
	root, err := rootAt(cp.Size)
	if err != nil {
		return fmt.Errorf("checkpoint: Merkle root at the checkpoint's size %d: %w", cp.Size, err)
	}
	if root != cp.Root {
		return &MismatchError{Checkpoint: cp, Events: events, Root: root}
	}
	return nil
}
