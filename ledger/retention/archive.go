package retention

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
	"github.com/keyledger/keyledger/ledger/segment"
)

// ArchiveRequest asks Archive to write the ledger's oldest events.
type ArchiveRequest struct {
	Ledger *ledger.Ledger // read only; opened read-only is enough
	Stream string         // the ledger stream's name, for the manifest
	// Checkpoint is the newest signed checkpoint: it must cover the
	// archive, and the ledger must extend it. Verifier is the checkpoint
	// verifier key (note vkey) it, and the archive, must verify with.
	Checkpoint []byte
	Verifier   string
	// Before cuts the archive: it holds the whole messages before the
	// first one holding an event at or after Before.
	Before time.Time
	// WholeSegments ends the archive instead at the end of the last sealed
	// segment before that cut: what Prune can remove.
	WholeSegments bool
	Dir           string // the archive directory to create; must not exist
	// Progress, if set, is called after each message with its stream
	// sequence and how many events it held.
	Progress func(seq, events uint64)
}

// ArchiveResult describes the archive written.
type ArchiveResult struct {
	Archive     segment.Archive // as read back and verified
	First, Last time.Time       // the first and last archived event's time
}

// ErrNothing means no event of the live ledger falls in the archive.
var ErrNothing = errors.New("retention: nothing to archive")

// NothingError says why there is nothing to archive; it is ErrNothing.
type NothingError struct {
	Before        time.Time
	WholeSegments bool // no sealed segment ends before Before
}

func (e *NothingError) Error() string {
	if e.WholeSegments {
		return fmt.Sprintf("%v: no sealed segment of the live ledger ends before %s", ErrNothing, e.Before.Format(time.RFC3339))
	}
	return fmt.Sprintf("%v: no whole message of the ledger is before %s", ErrNothing, e.Before.Format(time.RFC3339))
}

func (e *NothingError) Is(target error) bool { return target == ErrNothing }

// CoverageError means the signed checkpoint does not cover the archive, or
// the ledger does not reach it: a newer checkpoint is needed.
type CoverageError struct {
	Checkpoint, Archive, Ledger int64 // sizes: the checkpoint's, the archive's, the ledger's
}

func (e *CoverageError) Error() string {
	return fmt.Sprintf("retention: the newest signed checkpoint (size %d) must cover the archive (%d events) and the ledger must extend it (%d events)",
		e.Checkpoint, e.Archive, e.Ledger)
}

// MismatchError means the ledger's tree does not have the signed
// checkpoint's root at its size: the ledger was changed, or the
// checkpoint forged with the key.
type MismatchError struct{ Size int64 }

func (e *MismatchError) Error() string {
	return fmt.Sprintf("retention: the ledger does not match its newest signed checkpoint (size %d)", e.Size)
}

// UnverifiedError means the archive written does not verify when read
// back (segment.Open). It stays on disk, for inspection.
type UnverifiedError struct {
	Dir string
	Err error
}

func (e *UnverifiedError) Error() string {
	return fmt.Sprintf("retention: the archive written to %s does not verify: %v", e.Dir, e.Err)
}

func (e *UnverifiedError) Unwrap() error { return e.Err }

// archived is what the archive holds once a walk stops at some point.
type archived struct {
	events, sigs int // bytes of EventsFile and SignaturesFile
	end          chain.Head
	writers      map[string]string
	revoked      map[string]chain.Revocation
	last         time.Time
	chains       map[string]chain.ChainHead // every chain's head at the cut
}

// Archive walks the live ledger from its base as every reader does
// (quarantined messages are skipped: never applied, not part of the
// chain) and writes the whole messages before req.Before, or with
// req.WholeSegments those up to the end of the last sealed segment before
// that, as an archive in req.Dir: the events, their messages' writer
// signatures, the signed checkpoint and the consistency proof from the
// archive's end to it. It refuses unless the ledger has the checkpoint's
// root at its size, then reads the archive back and verifies it.
//
// The archive starts where the live ledger does: its manifest records that
// base, which Prune checks is still the ledger's.
func Archive(ctx context.Context, req ArchiveRequest) (ArchiveResult, error) {
	cp, err := merkle.Open(req.Checkpoint, req.Verifier)
	if err != nil {
		return ArchiveResult{}, &offline.SignatureError{Err: err}
	}
	l := req.Ledger
	segEnds := map[uint64]bool{}
	if req.WholeSegments {
		segs, err := l.Segments(ctx)
		if err != nil {
			return ArchiveResult{}, err
		}
		for _, s := range segs {
			if s.Sealed && s.Last >= s.First {
				segEnds[s.Last] = true
			}
		}
	}
	f, err := l.Folder()
	if err != nil {
		return ArchiveResult{}, err
	}
	tree, err := l.MemTree()
	if err != nil {
		return ArchiveResult{}, err
	}
	var events, sigs bytes.Buffer
	var cut, atEnd archived // where the walk's cut is, and the last segment end before it
	var first time.Time
	reached := false // a message with an event at or after Before
	err = l.Messages(ctx, func(m chain.Message) error {
		recs, err := f.Fold(m)
		var q *chain.Quarantine
		if errors.As(err, &q) {
			return nil // never applied, not part of the chain: reported by audit verify
		}
		if err != nil {
			return err
		}
		if req.Progress != nil {
			req.Progress(m.Seq, uint64(len(recs)))
		}
		for _, r := range recs {
			if !r.Event.Time.Before(req.Before) {
				reached = true
			}
		}
		if !reached {
			for i, r := range recs {
				if first.IsZero() && i == 0 {
					first = r.Event.Time
				}
				cut.last = r.Event.Time
				events.Write(r.Raw)
				events.WriteByte('\n')
			}
			line, _ := json.Marshal(offline.Signature(m, recs, len(recs)))
			sigs.Write(append(line, '\n'))
			cut.events, cut.sigs, cut.end, cut.writers, cut.chains = events.Len(), sigs.Len(), f.Head(), f.Writers(), f.Chains()
			cut.revoked = f.Revoked() // never changed in place (WithRevoked copies it)
			if segEnds[m.Seq] {
				atEnd = cut
			}
		}
		for _, r := range recs {
			if err := tree.Append(r.Raw); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ArchiveResult{}, err
	}
	if req.WholeSegments {
		events.Truncate(atEnd.events)
		sigs.Truncate(atEnd.sigs)
		cut = atEnd
		if cut.end.Empty() || cut.end.Count <= l.FirstIndex() {
			return ArchiveResult{}, &NothingError{Before: req.Before, WholeSegments: true}
		}
	}
	if cut.end.Empty() {
		return ArchiveResult{}, &NothingError{Before: req.Before}
	}
	n := int64(cut.end.Count) // events before the next base: its first position
	if cp.Size < n || cp.Size > tree.Size() {
		return ArchiveResult{}, &CoverageError{Checkpoint: cp.Size, Archive: n, Ledger: tree.Size()}
	}
	if root, err := tree.Root(cp.Size); err != nil || root != cp.Root {
		return ArchiveResult{}, &MismatchError{Size: cp.Size}
	}
	chains := cut.chains
	if len(chains) == 1 && chains[chain.Legacy].Count > 0 {
		chains = nil // a ledger of the legacy chain alone: its base names no chains, as before chains
	}
	next, err := segment.At(tree, cut.end.Count, cut.end.Hash, cut.writers, cut.end.Seq, chains)
	if err != nil {
		return ArchiveResult{}, err
	}
	next = next.WithRevoked(cut.revoked)
	proof, err := tree.Consistency(n, cp.Size)
	if err != nil {
		return ArchiveResult{}, err
	}
	m := segment.Manifest{Ledger: req.Stream, Base: l.Base(), Next: next, Before: req.Before.UTC(), FirstTime: first, LastTime: cut.last}
	if err := segment.Write(req.Dir, segment.Contents{Manifest: m, Events: events.Bytes(), Signatures: sigs.Bytes(),
		Checkpoint: req.Checkpoint, Proof: proof}); err != nil {
		return ArchiveResult{}, err
	}
	a, err := segment.Open(req.Dir, req.Verifier)
	if err != nil {
		return ArchiveResult{}, &UnverifiedError{Dir: req.Dir, Err: err}
	}
	return ArchiveResult{Archive: a, First: first, Last: cut.last}, nil
}
