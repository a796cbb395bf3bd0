// Package verify checks a live ledger end to end: every message
// authenticated by a registered writer and linked to the one before, the
// Merkle tree rebuilt from the events, and the whole against the newest
// stored signed checkpoint, which the ledger must extend (a truncated or
// rewritten tail fails). It is what `keyledger audit verify` runs on a
// deployment; package offline verifies an export, package segment
// archives.
//
// The package reads only: it never writes the ledger and never holds a
// signing key or key material. Live is safe to call concurrently.
package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/merkle"
)

// CheckpointStore finds the newest stored checkpoint that verifies with a
// verifier key ("" takes the newest unverified), and how many newer ones
// did not; checkpoint.ErrNone when there is none (*checkpoint.Store).
type CheckpointStore interface {
	Newest(ctx context.Context, vkey string) (merkle.Checkpoint, int, error)
}

// Request says what to verify.
type Request struct {
	Ledger *ledger.Ledger // opened read-only is enough
	// Checkpoints holds the deployment's signed checkpoints; nil when it
	// stores none.
	Checkpoints CheckpointStore
	// Verifier is the checkpoint verifier key (note vkey); "" checks the
	// ledger against the newest stored checkpoint without its signature,
	// which can raise a false alarm but never hide a truncation.
	Verifier string
	// Progress, if set, is called for each message with its stream
	// sequence and how many events it holds.
	Progress func(seq, events uint64)
}

// Result is what Live established.
type Result struct {
	// Report is the fold's: the head, the writers, and every quarantined
	// message (forged, replayed, garbage or changed on disk).
	Report chain.Report
	Took   time.Duration // the walk's
	// Checkpoint is the checkpoint the ledger was found to extend; nil when
	// none is stored (a truncated tail cannot be detected then).
	Checkpoint *merkle.Checkpoint
	// Skipped is how many newer stored checkpoints did not verify with the
	// Verifier: another instance's key, or forged.
	Skipped int
}

// FailedError means the ledger does not verify: a message that cannot be
// read, a tail that does not extend the newest checkpoint, a segment
// deleted with no SegmentRemoved recording it, a base that cannot be
// trusted. Its text is the cause's.
type FailedError struct{ Err error }

func (e *FailedError) Error() string { return e.Err.Error() }
func (e *FailedError) Unwrap() error { return e.Err }

// Live verifies the live ledger from where it starts (after removed
// segments, from their base; archives verify what came before). The
// newest checkpoint is read first: one stored during the walk may cover
// events the walk does not reach. Quarantined messages are in the
// Result's Report, not an error: the chain continues past them. A
// *FailedError means the ledger does not verify; any other error, that
// it could not be checked.
func Live(ctx context.Context, req Request) (Result, error) {
	var res Result
	if req.Checkpoints != nil {
		cp, skipped, err := req.Checkpoints.Newest(ctx, req.Verifier)
		res.Skipped = skipped
		switch {
		case err == nil:
			res.Checkpoint = &cp
		case !errors.Is(err, checkpoint.ErrNone):
			return res, fmt.Errorf("reading checkpoints: %w", err)
		}
	}
	var watch func(chain.Message) error
	if req.Progress != nil {
		watch = func(m chain.Message) error {
			req.Progress(m.Seq, uint64(bytes.Count(m.Data, []byte{'\n'})))
			return nil
		}
	}
	start := time.Now()
	rep, err := req.Ledger.AuditAgainst(ctx, res.Checkpoint, watch)
	res.Report, res.Took = rep, time.Since(start)
	var ue *ledger.UnreadableError
	var mismatch *checkpoint.MismatchError
	var missing *ledger.MissingSegmentError
	var badBase *ledger.BaseError
	if errors.As(err, &ue) || errors.As(err, &mismatch) || errors.As(err, &missing) || errors.As(err, &badBase) {
		return res, &FailedError{Err: err}
	}
	return res, err
}
