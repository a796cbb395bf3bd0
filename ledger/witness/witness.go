// Package witness checks a ledger's signed checkpoints from outside the box,
// as a Certificate Transparency monitor does: each new checkpoint must carry
// a valid signature, and the tree it names must extend the last one the
// witness saw, proven by a consistency proof. A deployment restored from an
// old disk image (rollback), or one that rewrote its history (fork), cannot
// produce such a proof, whatever it holds inside.
//
// The witness keeps the last checkpoint it accepted in a state file; the
// file holds only the signed note, which is verified again when it is read,
// so a tampered state file is refused rather than trusted.
//
// Check is pure and safe for concurrent use; State files are written
// atomically (temporary file, fsync, rename).
package witness

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/crypto/durable"
	"github.com/keyledger/keyledger/ledger/merkle"
)

// Failures a witness alarms on. Anything else (an unreachable deployment,
// a malformed answer) is an ordinary error to retry.
var (
	// ErrSignature: the checkpoint is not signed by the deployment's key.
	ErrSignature = errors.New("witness: checkpoint signature does not verify")
	// ErrRollback: the deployment shows fewer events than it once signed.
	ErrRollback = errors.New("witness: ledger rolled back")
	// ErrFork: the deployment's tree does not extend the one it once signed.
	ErrFork = errors.New("witness: ledger forked")
)

// Source is the deployment under watch.
type Source interface {
	// Checkpoint returns the newest signed checkpoint (a signed note).
	Checkpoint(ctx context.Context) ([]byte, error)
	// Consistency returns the proof that the tree of newSize events extends
	// the tree of oldSize events.
	Consistency(ctx context.Context, oldSize, newSize int64) ([]tlog.Hash, error)
}

// Seen is the last checkpoint a witness accepted.
type Seen struct {
	Signed     []byte // the signed note as the deployment served it
	Checkpoint merkle.Checkpoint
}

// Check fetches the deployment's newest checkpoint, verifies its signature
// with vkey and, if prev is not nil, proves that it extends prev. It returns
// what to remember next. Alarms wrap ErrSignature, ErrRollback or ErrFork.
func Check(ctx context.Context, src Source, vkey string, prev *Seen) (Seen, error) {
	signed, err := src.Checkpoint(ctx)
	if err != nil {
		return Seen{}, fmt.Errorf("witness: fetching checkpoint: %w", err)
	}
	cp, err := merkle.Open(signed, vkey)
	if err != nil {
		return Seen{}, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	next := Seen{Signed: signed, Checkpoint: cp}
	if prev == nil {
		return next, nil
	}
	old := prev.Checkpoint
	switch {
	case cp.Origin != old.Origin:
		return Seen{}, fmt.Errorf("%w: origin %q, previously %q", ErrFork, cp.Origin, old.Origin)
	case cp.Size < old.Size:
		return Seen{}, fmt.Errorf("%w: checkpoint of %d events, previously %d", ErrRollback, cp.Size, old.Size)
	case cp.Size == old.Size:
		if cp.Root != old.Root {
			return Seen{}, fmt.Errorf("%w: %d events with root %s, previously %s", ErrFork, cp.Size, cp.Root, old.Root)
		}
		return next, nil
	case old.Size == 0:
		return next, nil // every tree extends the empty one
	}
	proof, err := src.Consistency(ctx, old.Size, cp.Size)
	if err != nil {
		return Seen{}, fmt.Errorf("witness: fetching consistency proof %d..%d: %w", old.Size, cp.Size, err)
	}
	if err := tlog.CheckTree(proof, cp.Size, cp.Root, old.Size, old.Root); err != nil {
		return Seen{}, fmt.Errorf("%w: the tree of %d events does not extend the tree of %d events the deployment signed before (%v)",
			ErrFork, cp.Size, old.Size, err)
	}
	return next, nil
}

// Load reads a state file written by Save and verifies it with vkey. A
// missing file is (nil, nil): the witness has seen nothing yet.
func Load(path, vkey string) (*Seen, error) {
	signed, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cp, err := merkle.Open(signed, vkey)
	if err != nil {
		return nil, fmt.Errorf("witness: state file %s: %w", path, err)
	}
	return &Seen{Signed: signed, Checkpoint: cp}, nil
}

// Save writes s to path atomically.
func Save(path string, s Seen) error {
	return durable.WriteFile(path, s.Signed, 0o600)
}
