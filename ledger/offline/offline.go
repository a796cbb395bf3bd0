// Package offline is the ledger's offline form and its verification with
// nothing but the checkpoint verifier key. An export directory holds
// EventsFile (every event's exact stored bytes, one per line, in order) and
// CheckpointFile (the newest signed checkpoint when it was written).
//
// Verify checks the checkpoint's signature, every chain link, and that the
// events rebuild exactly the signed Merkle root: that catches a changed,
// dropped, inserted or reordered event, and a truncated tail, which a plain
// hash chain cannot. It holds no state and is safe for concurrent use.
package offline

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/merkle"
)

// The files of an export directory.
const (
	EventsFile     = "events.jsonl"
	CheckpointFile = "checkpoint"
)

// SignatureError means the checkpoint does not verify with the verifier key.
type SignatureError struct{ Err error }

func (e *SignatureError) Error() string {
	return "the checkpoint's signature does not verify: " + e.Err.Error()
}

func (e *SignatureError) Unwrap() error { return e.Err }

// LinkError is the first broken chain link, at a line of EventsFile.
type LinkError struct {
	Line int
	Link *chain.BrokenLinkError
}

func (e *LinkError) Error() string {
	return fmt.Sprintf("chain broken at line %d (event index %d): expected %s, found %s", e.Line, e.Link.Index, e.Link.Expected, e.Link.Found)
}

func (e *LinkError) Unwrap() error { return e.Link }

// Result is what a successful verification established.
type Result struct {
	Events     int64             // events in the export, all chain-linked
	Checkpoint merkle.Checkpoint // the signed checkpoint; its first Size events rebuild its Root
}

// Uncovered is the number of events after those the checkpoint covers.
func (r Result) Uncovered() int64 { return r.Events - r.Checkpoint.Size }

// Verify checks exported events (EventsFile's contents) against a signed
// checkpoint with the verifier key (note vkey text). Any error means the
// export does not verify: a *SignatureError, a *LinkError, or a mismatch with the signed root.
func Verify(events, signedCheckpoint []byte, vkey string) (Result, error) {
	cp, err := merkle.Open(signedCheckpoint, vkey)
	if err != nil {
		return Result{}, &SignatureError{Err: err}
	}
	var lines [][]byte
	if len(events) > 0 {
		lines = bytes.Split(bytes.TrimSuffix(events, []byte("\n")), []byte("\n"))
	}
	links := chain.NewLinks(nil)
	var tree merkle.Tree
	for i, raw := range lines {
		if _, err := links.Link(uint64(i+1), raw); err != nil {
			var bl *chain.BrokenLinkError
			if errors.As(err, &bl) {
				return Result{}, &LinkError{Line: i + 1, Link: bl}
			}
			return Result{}, fmt.Errorf("line %d: %w", i+1, err)
		}
		if err := tree.Append(raw); err != nil {
			return Result{}, fmt.Errorf("line %d: %w", i+1, err)
		}
	}
	if int64(len(lines)) < cp.Size {
		return Result{}, fmt.Errorf("truncated: the signed checkpoint covers %d events, the export has %d", cp.Size, len(lines))
	}
	root, err := tree.Root(cp.Size)
	if err != nil || root != cp.Root {
		return Result{}, fmt.Errorf("the first %d events do not match the signed checkpoint's root (an event was changed, dropped, inserted or reordered)", cp.Size)
	}
	return Result{Events: int64(len(lines)), Checkpoint: cp}, nil
}
